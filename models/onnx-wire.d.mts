export interface Field { number: number; wire: number; value?: bigint; body?: Uint8Array; raw?: Uint8Array }
export function decode(buf: Uint8Array): Field[];
export function encode(fields: Field[]): Uint8Array;
export function field(number: number, value: Uint8Array | string | number | bigint): Uint8Array;
export function text(f: Field): string;
export function withBody(f: Field, body: Uint8Array): Field;
