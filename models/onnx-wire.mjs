// Just enough of the protobuf wire format to rewrite nodes of an ONNX model without a protobuf
// library: a message is a list of fields, each kept as its original bytes unless replaced, so
// everything this code does not touch is copied through byte for byte.
import { TextDecoder, TextEncoder } from 'node:util';

const LEN = 2;

function readVarint(buf, p) {
  let value = 0n;
  for (let shift = 0n; ; shift += 7n) {
    const byte = buf[p++];
    if (byte === undefined) throw new Error('truncated varint');
    value |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [value, p];
  }
}

function varint(value) {
  const out = [];
  let v = BigInt(value);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? low | 0x80 : low);
  } while (v);
  return Uint8Array.from(out);
}

/** The fields of one message: `{ number, wire, value (varints), body (bytes of LEN fields), raw }`. */
export function decode(buf) {
  const out = [];
  for (let p = 0; p < buf.length; ) {
    const start = p;
    let key;
    [key, p] = readVarint(buf, p);
    const number = Number(key >> 3n), wire = Number(key & 7n);
    let value, body;
    if (wire === 0) [value, p] = readVarint(buf, p);
    else if (wire === LEN) {
      let n;
      [n, p] = readVarint(buf, p);
      body = buf.subarray(p, p + Number(n));
      p += Number(n);
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (p > buf.length) throw new Error('truncated message');
    out.push({ number, wire, value, body, raw: buf.subarray(start, p) });
  }
  return out;
}

export function encode(fields) {
  const parts = fields.map((f) => f.raw ?? field(f.number, f.body ?? f.value));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

/** One field: bytes or a string as a LEN field, a number or bigint as a varint. */
export function field(number, value) {
  if (typeof value === 'string') value = new TextEncoder().encode(value);
  if (value instanceof Uint8Array) {
    const key = varint((number << 3) | LEN), len = varint(value.length);
    const out = new Uint8Array(key.length + len.length + value.length);
    out.set(key); out.set(len, key.length); out.set(value, key.length + len.length);
    return out;
  }
  const key = varint(number << 3), v = varint(value);
  const out = new Uint8Array(key.length + v.length);
  out.set(key); out.set(v, key.length);
  return out;
}

export const text = (f) => new TextDecoder().decode(f.body);
/** A field whose body is replaced (the raw bytes are dropped so `encode` rebuilds it). */
export const withBody = (f, body) => ({ number: f.number, wire: LEN, body });
