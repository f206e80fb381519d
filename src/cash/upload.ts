/**
 * Receiving files: the raw request body (an API client sending the CSV or XLSX as it is), and
 * multipart/form-data (a console form with a file input). The application's body parser reads JSON
 * and plain forms only, so these bodies are read here, up to a size limit.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../http/errors.js';
import { MAX_FILE_BYTES } from './files.js';

/** The request body as bytes; a 413 past `limit`. */
export async function readRawBody(req: IncomingMessage, limit = MAX_FILE_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, 'payload_too_large', `The file is larger than ${Math.round(limit / 1024 / 1024)} MB; split it`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new HttpError(413, 'payload_too_large', `The file is larger than ${Math.round(limit / 1024 / 1024)} MB; split it`);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export interface Multipart {
  fields: Record<string, string>;
  files: { field: string; filename: string; contentType: string | null; data: Buffer }[];
}

/** Parses a multipart/form-data body (RFC 7578) as browsers send it. A 400 when it is not one. */
export function parseMultipart(body: Buffer, contentType: string): Multipart {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!/^multipart\/form-data/i.test(contentType) || !m) throw new HttpError(400, 'bad_request', 'Send the form as multipart/form-data');
  const boundary = Buffer.from(`--${(m[1] ?? m[2]).trim()}`);
  const out: Multipart = { fields: {}, files: [] };
  let pos = body.indexOf(boundary);
  if (pos < 0) throw new HttpError(400, 'bad_request', 'The form data has no parts');
  for (;;) {
    pos += boundary.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break; // "--": the end
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new HttpError(400, 'bad_request', 'The form data is cut short');
    const headers = body.subarray(pos, headerEnd).toString('utf8');
    const next = body.indexOf(boundary, headerEnd + 4);
    if (next < 0) throw new HttpError(400, 'bad_request', 'The form data is cut short');
    // The part's content ends with the CRLF before the next boundary.
    const data = body.subarray(headerEnd + 4, next - 2);
    const disposition = /content-disposition:\s*form-data;([^\r\n]*)/i.exec(headers)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim() ?? null;
    if (name !== undefined) {
      if (filename !== undefined) out.files.push({ field: name, filename: filename.replace(/^.*[\\/]/, ''), contentType: type, data: Buffer.from(data) });
      else out.fields[name] = data.toString('utf8');
    }
    pos = next;
  }
  return out;
}
