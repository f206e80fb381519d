/**
 * What the cash imports share: reading the file (the contacts domain's CSV/XLSX reader), the
 * column mapping (given, or guessed from the headers in English and Spanish), cell values, phone
 * numbers (the contacts domain's normalisation) and per-row errors (row, column, reason).
 */
import { parseMappingText } from '../contacts/import.js';
import { HttpError } from '../http/errors.js';
import { phoneNormaliser } from '../contacts/import.js';
import { detectFormat, FileError, readSource, type Cell, type ImportFormat, type Source } from '../contacts/import-read.js';

export { FileError, type Cell, type ImportFormat };

export interface RowError {
  /** The row's number in the file (CSV line, worksheet row). */
  row: number;
  /** The column as headed in the file; null when the whole row is concerned. */
  column: string | null;
  /** The value as read (shortened). */
  value: string | null;
  reason: string;
}

/** Bad rows listed in a report; the counts are always complete. */
export const MAX_REPORTED = 10_000;
/** At most this many rows per file. */
export const MAX_ROWS = 500_000;
/** Largest file accepted (bytes). */
export const MAX_FILE_BYTES = 50 * 1024 * 1024;

export const headerKey = (s: string) =>
  s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');

export const short = (v: Cell): string | null => {
  if (v === null || v === undefined) return null;
  const s = v instanceof Date ? v.toISOString().slice(0, 10) : String(v);
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
};

export const isBlank = (v: Cell | undefined) => v === null || v === undefined || (typeof v === 'string' && v.trim() === '');

/** A cell as text; whole numbers from a worksheet without ".0", dates as YYYY-MM-DD. */
export function cellText(v: Cell | undefined): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString().slice(0, 10);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  return String(v).trim();
}

export function importInvalid(details: Record<string, string>, message = 'The import cannot start'): HttpError {
  return new HttpError(400, 'import_invalid', message, details);
}

export interface Column {
  index: number;
  header: string;
}

export interface Resolved<T extends string> {
  columns: Partial<Record<T, Column>>;
  mapping: Partial<Record<T, string>>;
  ignored: string[];
}

/**
 * Resolves the mapping (target → file header, given) against the headers, guessing the rest from
 * `guesses` (header words compared lower case without accents, spaces or punctuation). Throws a
 * 400 naming each mapping problem.
 */
export function resolveColumns<T extends string>(headers: string[], given: Record<string, string> | undefined, guesses: Record<T, string[]>): Resolved<T> {
  const targets = Object.keys(guesses) as T[];
  const errors: Record<string, string> = {};
  const byHeader = new Map<string, number[]>();
  headers.forEach((h, i) => {
    if (h === '') return;
    const k = h.toLowerCase();
    byHeader.set(k, [...(byHeader.get(k) ?? []), i]);
  });
  const used = new Set<number>();
  const columns: Partial<Record<T, Column>> = {};
  const mapping: Partial<Record<T, string>> = {};
  const place = (t: T, index: number) => {
    used.add(index);
    columns[t] = { index, header: headers[index] };
    mapping[t] = headers[index];
  };
  for (const [rawTarget, column] of Object.entries(given ?? {})) {
    const target = rawTarget.trim() as T;
    if (!targets.includes(target)) {
      errors[`mapping.${rawTarget}`] = `"${rawTarget}" is not something a column can be imported into (${targets.join(', ')})`;
      continue;
    }
    const found = byHeader.get(String(column).trim().toLowerCase());
    if (!found) {
      errors[`mapping.${rawTarget}`] = `the file has no column "${column}" (the columns are ${headers.filter(Boolean).join(', ')})`;
      continue;
    }
    if (found.length > 1) {
      errors[`mapping.${rawTarget}`] = `the file has ${found.length} columns headed "${column}"; rename them so that each is unique`;
      continue;
    }
    place(target, found[0]);
  }
  if (Object.keys(errors).length) throw importInvalid(errors, 'The column mapping does not fit the file');
  for (const t of targets) {
    if (columns[t]) continue;
    const words = guesses[t];
    const i = headers.findIndex((h, idx) => !used.has(idx) && h !== '' && words.includes(headerKey(h)));
    if (i >= 0) place(t, i);
  }
  const ignored = headers.filter((h, i) => h !== '' && !used.has(i));
  return { columns, mapping, ignored };
}

/** "household_id=ID hogar, phone=Celular" → {household_id: "ID hogar", phone: "Celular"}. */
export { parseMappingText };

/**
 * Phone numbers of one file as E.164, or why not: the contacts import's normaliser (libphonenumber,
 * with a per-file cache of number prefixes; spreadsheets drop the "+", so 51987654321 is tried as
 * +51 987 654 321 too). Make one per file.
 */
export function phoneReader(defaultCountry: string): (raw: Cell) => { ok: true; e164: string } | { ok: false; reason: string } {
  const normalise = phoneNormaliser(defaultCountry);
  return (raw) => {
    const text = typeof raw === 'number' ? (Number.isInteger(raw) ? String(raw) : raw.toFixed(0)) : cellText(raw);
    const p = normalise(text);
    return p.ok ? p : { ok: false, reason: `invalid phone number: ${p.reason}` };
  };
}

/** A file's rows, read as a stream of batches. Refuses files that are too large or unreadable (400). */
export async function openFile(fileName: string, content: Uint8Array | string, format?: ImportFormat): Promise<{ format: ImportFormat; source: Source }> {
  const size = typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength;
  if (size === 0) throw importInvalid({ file: 'the file is empty' });
  if (size > MAX_FILE_BYTES) throw importInvalid({ file: `the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MB; split it` });
  const fmt = format ?? detectFormat(fileName, typeof content === 'string' ? undefined : content);
  try {
    return { format: fmt, source: await readSource(fmt, content) };
  } catch (e) {
    if (e instanceof FileError) throw importInvalid({ file: e.message });
    throw e;
  }
}

/** Decodes base64 file content sent over JSON; a 400 naming the field when it is not base64. */
export function fromBase64(b64: string, field = 'contentBase64'): Uint8Array {
  const clean = b64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 !== 0) {
    throw new HttpError(400, 'validation_failed', 'The request is not valid', { [field]: 'is not base64' });
  }
  return new Uint8Array(Buffer.from(clean, 'base64'));
}

/** A decimal amount ("1,250.50", "1250,5", 300) or null. */
export function parseAmount(v: Cell): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.round(v * 100) / 100 : null;
  let s = cellText(v).replace(/[\s\u00a0]/g, '').replace(/^[A-Z]{3}|[A-Z]{3}$/g, '').replace(/^[^\d\-.,]+/, '');
  if (!s) return null;
  if (/^-?\d{1,3}(,\d{3})+(\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  else if (/^-?\d{1,3}(\.\d{3})+(,\d+)?$/.test(s)) s = s.replace(/\./g, '').replace(',', '.');
  else if (/^-?\d+,\d{1,2}$/.test(s)) s = s.replace(',', '.');
  if (!/^-?\d+(\.\d+)?$/.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? Math.round(n * 100) / 100 : null;
}

/** A date cell as YYYY-MM-DD, or null. Accepts worksheet dates, YYYY-MM-DD and DD/MM/YYYY. */
export function parseDay(v: Cell): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString().slice(0, 10);
  const s = cellText(v);
  let m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$/.exec(s);
  if (m) return validDay(+m[1], +m[2], +m[3]);
  m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s);
  if (m) return validDay(+m[3], +m[2], +m[1]);
  return null;
}

function validDay(y: number, mo: number, d: number): string | null {
  const dt = new Date(Date.UTC(y, mo - 1, d));
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d) return null;
  return dt.toISOString().slice(0, 10);
}

export const chunk = <T>(xs: readonly T[], n = 500): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

/** The id of an inserted row, from `returning('id')` on either database. */
export const insertedId = (row: unknown): number => Number(typeof row === 'object' && row !== null ? (row as { id: unknown }).id : row);
