/**
 * Exports of contacts — the members of a list, of a segment, or both — as CSV (csv-stringify)
 * or XLSX (exceljs), with the columns asked for. Erased contacts are never exported. Every
 * export is audited with who, which list/segment, which columns and how many rows (never the
 * data itself). The file's headers are the names the importer recognises, so an export can be
 * imported again.
 */
import { PassThrough } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import ExcelJS from 'exceljs';
import type { Database, Knex } from '../db/orm.js';
import { toDateOrNull, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { listFields, parseFields } from './fields.js';
import { audienceQuery, getSegment, SegmentError, segmentHttpError } from './segments/index.js';
import { nearest } from './segments/errors.js';

export const EXPORT_FORMATS = ['csv', 'xlsx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Built-in columns; custom field keys may be asked for as well. */
export const BASE_COLUMNS = ['id', 'phone', 'whatsapp', 'sms', 'name', 'language', 'timezone', 'status', 'created', 'last_seen', 'joined'] as const;
export const DEFAULT_COLUMNS = ['phone', 'name', 'language', 'status'];

export interface ExportRequest {
  /** A list key: its members (active subscriptions). */
  list?: string;
  /** A saved segment key. */
  segment?: string;
  /** Segment query text (instead of, or besides, a saved segment). */
  query?: string;
  /** Column names; default: phone, name, language, status and every custom field. */
  columns?: string[];
  format: ExportFormat;
  /** Only contacts with status active (default: everyone who matches, with their status). */
  activeOnly?: boolean;
}

export interface ExportFile {
  fileName: string;
  contentType: string;
  body: Buffer;
  rows: number;
  columns: string[];
}

const PAGE = 5000;

/**
 * A spreadsheet opens a cell that starts with = + - @ as a formula. Text that could run as one
 * gets a leading apostrophe; phone numbers (+51…) and plain numbers stay as they are.
 */
export function safeCell(v: string): string {
  if (v === '') return v;
  const c = v[0];
  if (c === '=' || c === '@' || c === '\t' || c === '\r') return `'${v}`;
  if ((c === '+' || c === '-') && !/^[+-][\d\s().]*$/.test(v)) return `'${v}`;
  return v;
}

function invalid(details: Record<string, string>): HttpError {
  return new HttpError(400, 'validation_failed', 'The export request is not valid', details);
}

export async function exportContacts(db: Database, actor: Actor, req: ExportRequest): Promise<ExportFile> {
  const knex = db.knex;
  if (!req.list && !req.segment && !req.query) throw invalid({ list: 'choose a list or a segment to export' });
  const fields = await listFields(knex);
  const known = [...BASE_COLUMNS, ...fields.map((f) => f.key)];
  const columns = req.columns?.length ? [...new Set(req.columns.map((c) => c.trim()).filter(Boolean))] : [...DEFAULT_COLUMNS, ...fields.map((f) => f.key)];
  const unknown = columns.filter((c) => !known.includes(c));
  if (unknown.length) {
    const s = nearest(unknown[0], known);
    throw invalid({ columns: `unknown column ${unknown.join(', ')}${s ? `; did you mean "${s}"?` : ''} (columns: ${known.join(', ')})` });
  }
  if (columns.includes('joined') && !req.list) throw invalid({ columns: 'joined (the date someone joined) needs a list' });

  let listId: number | null = null;
  if (req.list) {
    const l = await knex('lists').where('key', req.list).first('id');
    if (!l) throw invalid({ list: `there is no list "${req.list}"` });
    listId = toInt(l.id);
  }
  let segmentKey: string | null = null;
  if (req.segment) segmentKey = (await getSegment(knex, req.segment)).key;

  let base: Knex.QueryBuilder;
  try {
    ({ query: base } = await audienceQuery(knex, { segment: req.segment, query: req.query, lists: listId ? [listId] : undefined, activeOnly: req.activeOnly ?? false }));
  } catch (e) {
    if (e instanceof SegmentError) throw segmentHttpError(e);
    throw e;
  }

  const needAddresses = columns.some((c) => c === 'phone' || c === 'whatsapp' || c === 'sms');
  const records: string[][] = [];
  let after = 0;
  for (;;) {
    const rows = await base
      .clone()
      .where('c.id', '>', after)
      .orderBy('c.id')
      .limit(PAGE)
      .select('c.id', 'c.name', 'c.language', 'c.timezone', 'c.status', 'c.fields', 'c.created_at', 'c.last_seen_at');
    if (rows.length === 0) break;
    const ids = rows.map((r: { id: unknown }) => toInt(r.id));
    after = ids[ids.length - 1];
    const phones = new Map<number, { whatsapp?: string; sms?: string }>();
    if (needAddresses) {
      const addresses = await knex('contact_addresses').whereIn('contact_id', ids).where('kind', 'phone').orderBy('id').select('contact_id', 'channel', 'address');
      for (const a of addresses) {
        const p = phones.get(toInt(a.contact_id)) ?? {};
        const ch = a.channel as 'whatsapp' | 'sms';
        p[ch] ??= String(a.address);
        phones.set(toInt(a.contact_id), p);
      }
    }
    const joined = new Map<number, Date | null>();
    if (listId !== null && columns.includes('joined')) {
      const subs = await knex('subscriptions').where('list_id', listId).whereIn('contact_id', ids).select('contact_id', 'joined_at');
      for (const s of subs) joined.set(toInt(s.contact_id), toDateOrNull(s.joined_at));
    }
    for (const r of rows) {
      const id = toInt(r.id);
      const f = parseFields(r.fields);
      const p = phones.get(id) ?? {};
      const iso = (v: unknown) => toDateOrNull(v)?.toISOString() ?? '';
      records.push(
        columns.map((c) => {
          switch (c) {
            case 'id':
              return String(id);
            case 'phone':
              return p.sms ?? p.whatsapp ?? '';
            case 'whatsapp':
              return p.whatsapp ?? '';
            case 'sms':
              return p.sms ?? '';
            case 'name':
              return safeCell(r.name ?? '');
            case 'language':
              return r.language ?? '';
            case 'timezone':
              return r.timezone ?? '';
            case 'status':
              return String(r.status);
            case 'created':
              return iso(r.created_at);
            case 'last_seen':
              return iso(r.last_seen_at);
            case 'joined':
              return joined.get(id)?.toISOString() ?? '';
            default:
              return f[c] === undefined || f[c] === null ? '' : safeCell(String(f[c]));
          }
        }),
      );
    }
    if (rows.length < PAGE) break;
  }

  const stamp = new Date().toISOString().slice(0, 10);
  const what = [req.list && `list-${req.list}`, segmentKey && `segment-${segmentKey}`, req.query && 'query'].filter(Boolean).join('-');
  const fileName = `contacts-${what}-${stamp}.${req.format}`;
  let body: Buffer;
  if (req.format === 'csv') {
    body = Buffer.from('\ufeff' + stringify([columns, ...records]), 'utf8');
  } else {
    const sink = new PassThrough();
    const parts: Buffer[] = [];
    sink.on('data', (c: Buffer) => parts.push(c));
    const done = new Promise<void>((resolve, reject) => {
      sink.on('end', resolve);
      sink.on('error', reject);
    });
    const wb = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: sink, useStyles: false, useSharedStrings: false });
    const ws = wb.addWorksheet('contacts');
    ws.addRow(columns).commit();
    for (const r of records) ws.addRow(r).commit();
    ws.commit();
    await wb.commit();
    await done;
    body = Buffer.concat(parts);
  }

  await audit(db, actor, {
    action: 'contacts.export',
    entityType: req.list ? 'list' : 'segment',
    entityId: req.list ?? segmentKey ?? undefined,
    detail: { list: req.list ?? null, segment: segmentKey, query: Boolean(req.query), rows: records.length, columns, format: req.format, activeOnly: Boolean(req.activeOnly) },
  });
  return {
    fileName,
    contentType: req.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    body,
    rows: records.length,
    columns,
  };
}
