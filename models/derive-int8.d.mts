export function deriveInt8(model: Uint8Array): { bytes: Uint8Array; signed: number; projections: number };
