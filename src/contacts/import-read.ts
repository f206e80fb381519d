/**
 * Reading an import file row by row: CSV with csv-parse (streamed; the delimiter — comma,
 * semicolon or tab — is taken from the header line; UTF-8, or Windows-1252 when the bytes are not
 * UTF-8) and XLSX with exceljs's streaming reader (first worksheet). Each row keeps its number as
 * in the file: the line for CSV (the line a record starts on), the row for a worksheet.
 */
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import ExcelJS from 'exceljs';

export type Cell = string | number | boolean | Date | null;

export interface SourceRow {
  /** Line (CSV) or worksheet row (XLSX) as a person opening the file would count it, from 1. */
  row: number;
  cells: Cell[];
}

export interface Source {
  headers: string[];
  /** The row number of the header line. */
  headerRow: number;
  /** The rows after the header, in batches. */
  rows: AsyncIterable<SourceRow[]>;
}

export type ImportFormat = 'csv' | 'xlsx';

export class FileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileError';
  }
}

export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** csv or xlsx from a file name (and the bytes: an XLSX file is a zip starting with PK). */
export function detectFormat(fileName: string, bytes?: Uint8Array): ImportFormat {
  if (/\.xlsx$/i.test(fileName)) return 'xlsx';
  if (/\.(csv|txt|tsv)$/i.test(fileName)) return 'csv';
  if (bytes && bytes[0] === 0x50 && bytes[1] === 0x4b) return 'xlsx';
  return 'csv';
}

/** Text from bytes: UTF-8 (BOM dropped), or Windows-1252 when the bytes are not valid UTF-8 (older Excel exports). */
export function decodeText(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

function sniffDelimiter(text: string): string {
  const end = text.indexOf('\n');
  const first = end === -1 ? text : text.slice(0, end);
  let best = ',';
  let bestCount = 0;
  for (const d of [',', ';', '\t', '|']) {
    const n = first.split(d).length - 1;
    if (n > bestCount) {
      best = d;
      bestCount = n;
    }
  }
  return best;
}

/**
 * Records of a CSV text in batches, each with the line it starts on. The text is fed to the
 * parser a slice at a time and the records read synchronously after each slice (csv-parse's
 * per-record `info` costs more than the parsing itself, so lines are counted here: a record
 * covers one line plus the line breaks inside its quoted values; empty lines are records too).
 */
async function* csvBatches(text: string): AsyncGenerator<SourceRow[]> {
  const parser = parse({ delimiter: sniffDelimiter(text), relax_column_count: true, relax_quotes: true, bom: true, skip_empty_lines: false });
  let failure: Error | null = null;
  let ended = false;
  parser.on('error', (e: Error) => (failure = e));
  parser.on('end', () => (ended = true));
  let line = 1;
  const drain = (): SourceRow[] => {
    const batch: SourceRow[] = [];
    let record: string[] | null;
    while ((record = parser.read() as string[] | null) !== null) {
      let spanned = 0;
      for (const cell of record) {
        if (cell.includes('\n')) spanned += cell.split('\n').length - 1;
      }
      batch.push({ row: line, cells: record });
      line += 1 + spanned;
    }
    if (failure) throw new FileError(`the CSV file cannot be read near line ${line}: ${(failure as Error).message}`);
    return batch;
  };
  const step = 1 << 20;
  for (let i = 0; i < text.length; i += step) {
    parser.write(text.slice(i, i + step));
    const batch = drain();
    if (batch.length) yield batch;
  }
  parser.end();
  while (!ended) {
    await new Promise((r) => setImmediate(r));
    const batch = drain();
    if (batch.length) yield batch;
    if (failure) throw new FileError(`the CSV file cannot be read: ${(failure as Error).message}`);
  }
}

const blankRow = (cells: Cell[]) => cells.every((c) => c === null || (typeof c === 'string' && c.trim() === ''));

/** Rows of a CSV text. The first non-empty record is the header. */
export async function readCsv(text: string): Promise<Source> {
  const batches = csvBatches(text);
  let headers: string[] | null = null;
  let headerRow = 0;
  let pending: SourceRow[] = [];
  while (!headers) {
    const next = await batches.next();
    if (next.done) throw new FileError('the file is empty');
    const i = next.value.findIndex((r) => !blankRow(r.cells));
    if (i >= 0) {
      headers = next.value[i].cells.map((h) => String(h ?? '').trim());
      headerRow = next.value[i].row;
      pending = next.value.slice(i + 1);
    }
  }
  const rows = (async function* () {
    if (pending.length) yield pending;
    for await (const batch of batches) yield batch;
  })();
  return { headers, headerRow, rows };
}

/** A cell's value as text, number, boolean or date: rich text, hyperlinks and formulas give their text or result. */
function cellValue(v: unknown): Cell {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.richText)) return (o.richText as { text?: string }[]).map((p) => p.text ?? '').join('');
    if ('result' in o) return cellValue(o.result);
    if ('text' in o) return cellValue(o.text);
    if ('error' in o) return null;
  }
  return String(v);
}

/** Rows of the first worksheet of an XLSX file, read as a stream. */
export async function readXlsx(bytes: Uint8Array): Promise<Source> {
  const reader = new ExcelJS.stream.xlsx.WorkbookReader(Readable.from([Buffer.from(bytes)]), {
    sharedStrings: 'cache',
    styles: 'cache',
    hyperlinks: 'ignore',
    worksheets: 'emit',
    entries: 'ignore',
  });
  const sheets = reader[Symbol.asyncIterator]();
  let sheet: IteratorResult<unknown>;
  try {
    sheet = await sheets.next();
  } catch (e) {
    throw new FileError(`the XLSX file cannot be read: ${(e as Error).message}`);
  }
  if (sheet.done) throw new FileError('the workbook has no worksheet');
  const rowsIt = (sheet.value as AsyncIterable<{ number: number; values: unknown[] }>)[Symbol.asyncIterator]();
  let headers: string[] | null = null;
  let headerRow = 0;
  const toCells = (values: unknown[]) => {
    const cells: Cell[] = [];
    // exceljs rows are 1-based and sparse
    for (let i = 1; i < values.length; i++) cells.push(cellValue(values[i]));
    return cells;
  };
  const read = async () => {
    try {
      return await rowsIt.next();
    } catch (e) {
      throw new FileError(`the XLSX file cannot be read: ${(e as Error).message}`);
    }
  };
  for (;;) {
    const r = await read();
    if (r.done) throw new FileError('the worksheet is empty');
    const cells = toCells(r.value.values);
    if (cells.some((c) => c !== null && String(c).trim() !== '')) {
      headers = cells.map((c) => (c === null ? '' : c instanceof Date ? c.toISOString().slice(0, 10) : String(c).trim()));
      headerRow = r.value.number;
      break;
    }
  }
  const rows = (async function* () {
    let batch: SourceRow[] = [];
    for (;;) {
      const r = await read();
      if (r.done) break;
      batch.push({ row: r.value.number, cells: toCells(r.value.values) });
      if (batch.length === 2000) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
  })();
  return { headers: headers!, headerRow, rows };
}

export async function readSource(format: ImportFormat, bytes: Uint8Array | string): Promise<Source> {
  if (format === 'xlsx') {
    if (typeof bytes === 'string') throw new FileError('an XLSX file must be sent as bytes (or base64), not as text');
    return readXlsx(bytes);
  }
  return readCsv(typeof bytes === 'string' ? bytes : decodeText(bytes));
}
