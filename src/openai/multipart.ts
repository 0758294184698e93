// multipart/form-data (RFC 7578) of a body already buffered in full (and bounded by
// MAX_UPLOAD_BYTES): one pass of Buffer.indexOf over it, parts as views, no copy of the file.
import { OpenAiError } from './errors.js';

interface FilePart {
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface Form {
  /** Text fields by name, every value in order (`timestamp_granularities[]` may repeat). */
  fields: Map<string, string[]>;
  files: Map<string, FilePart>;
}

const MAX_PARTS = 64;
const MAX_FIELD_BYTES = 64 << 10;
const MAX_HEADER_BYTES = 8 << 10;

function bad(message: string): OpenAiError {
  return new OpenAiError(400, message, null, 'invalid_form');
}

/** The boundary of a `multipart/form-data` Content-Type, or undefined for any other type. */
export function boundaryOf(contentType: string): string | undefined {
  const semicolon = contentType.indexOf(';');
  if (contentType.slice(0, semicolon < 0 ? undefined : semicolon).trim().toLowerCase() !== 'multipart/form-data') return undefined;
  // A quoted boundary may hold ';' and spaces (RFC 2046 allows both).
  const m = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(contentType);
  const value = m?.[1] ?? m?.[2];
  return value !== undefined && value.length >= 1 && value.length <= 70 ? value : undefined;
}

/** A header's parameters (`name="file"; filename="a.wav"`), quoted strings unescaped. */
function parameters(value: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (const m of value.matchAll(re)) {
    out.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim());
  }
  return out;
}

export function parseMultipart(body: Buffer, boundary: string): Form {
  const form: Form = { fields: new Map(), files: new Map() };
  const delimiter = Buffer.from(`--${boundary}`);
  // The first delimiter may follow a preamble; every later one is preceded by CRLF.
  let at = body.indexOf(delimiter);
  if (at < 0) throw bad('the multipart body has no part (its boundary was not found)');
  const next = Buffer.from(`\r\n--${boundary}`);
  let parts = 0;
  for (;;) {
    let cursor = at + delimiter.length;
    if (body[cursor] === 0x2d && body[cursor + 1] === 0x2d) return form; // "--": the closing delimiter
    // Transport padding, then CRLF.
    while (body[cursor] === 0x20 || body[cursor] === 0x09) cursor++;
    if (body[cursor] !== 0x0d || body[cursor + 1] !== 0x0a) throw bad('malformed multipart body: no CRLF after a boundary');
    cursor += 2;
    const headerEnd = body.indexOf('\r\n\r\n', cursor);
    if (headerEnd < 0 || headerEnd - cursor > MAX_HEADER_BYTES) throw bad('malformed multipart body: a part has no end to its headers');
    const headers = new Map<string, string>();
    for (const line of body.toString('utf8', cursor, headerEnd).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const end = body.indexOf(next, headerEnd + 4);
    if (end < 0) throw bad('malformed multipart body: the last part is not closed (truncated upload?)');
    if (++parts > MAX_PARTS) throw bad(`the form has more than ${MAX_PARTS} parts`);
    const content = body.subarray(headerEnd + 4, end);
    const disposition = headers.get('content-disposition') ?? '';
    if (!/^form-data\b/i.test(disposition)) throw bad('malformed multipart body: a part has no Content-Disposition: form-data');
    const params = parameters(disposition.slice(disposition.indexOf(';') >= 0 ? disposition.indexOf(';') : disposition.length));
    const name = params.get('name');
    if (name === undefined) throw bad('malformed multipart body: a part has no name');
    const filename = params.get('filename');
    if (filename !== undefined) {
      form.files.set(name, { filename, contentType: headers.get('content-type') ?? 'application/octet-stream', data: content });
    } else {
      if (content.length > MAX_FIELD_BYTES) throw bad(`the form field "${name}" is over ${MAX_FIELD_BYTES} bytes`);
      const values = form.fields.get(name) ?? [];
      values.push(content.toString('utf8'));
      form.fields.set(name, values);
    }
    at = end + 2; // at the "--boundary" after the CRLF
  }
}
