/**
 * Importing contacts into a list from CSV or XLSX.
 *
 * 1. Read: the file is parsed as a stream of rows (import-read.ts); a column mapping says which
 *    file column holds the phone number, the name, the language, the time zone, the per-row legal
 *    basis or consent date, and which custom field (missing mappings are guessed from the headers).
 * 2. Check, row by row, without touching the database: the number (libphonenumber's reason when
 *    it is not valid), each value against its field's type and choices, duplicates within the file,
 *    a consent basis for every row.
 * 3. Check against the database, in batches (one query per few thousand rows, never per row):
 *    numbers that belong to contacts who said STOP, are blocked or left this list themselves, and
 *    numbers of erased contacts (tombstones) without consent dated after the erasure.
 * 4. A dry run stops here and reports every bad row — its number in the file, the column and
 *    why — changing no contact. A commit is all or nothing: with any bad row nothing is written
 *    unless the importer asked to skip bad rows. It runs in one transaction with multi-row
 *    inserts: new contacts, field updates merged into existing contacts (matched on the E.164
 *    number), addresses, one consent row per person (method `import`, evidence
 *    "import:<id> <file> by <staff user>") with its consent_state, and the subscriptions.
 *
 * Every attempt is recorded in `imports` (dry_run, committed or failed) and audited.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { LEGAL_BASES, type LegalBasis } from './consent.js';
import { fieldDefinitions, type FieldDefinition, type FieldValue } from './fields.js';
import { addressHash } from './pseudonyms.js';
import { detectFormat, FileError, readSource, type ImportFormat } from './import-read.js';
import { importWorkerAvailable, warmImportWorker, workerBatches } from './import-worker-client.js';
import { BUILT_IN_TARGETS, checkRows, MAX_ROWS, type BuiltInTarget, type CheckedBatch, type GoodRow, type Mapped, type RowError } from './import-rows.js';

export { BUILT_IN_TARGETS, MAX_ROWS, phoneNormaliser, type RowError } from './import-rows.js';
import { nearest } from './segments/errors.js';
import { dialectOf } from './segments/compile.js';

export const MEDIA = ['whatsapp', 'sms'] as const;
export type ImportMedium = (typeof MEDIA)[number];

/** Header words recognised without a mapping (compared lower-case, without accents, spaces or punctuation). */
const HEADER_GUESSES: Record<BuiltInTarget, string[]> = {
  phone: ['phone', 'phonenumber', 'telephone', 'telefono', 'tel', 'celular', 'cel', 'movil', 'mobile', 'msisdn', 'number', 'numero', 'whatsapp', 'telemovel', 'telefone'],
  name: ['name', 'fullname', 'nombre', 'nombrecompleto', 'nome', 'nom'],
  language: ['language', 'lang', 'idioma', 'lengua', 'langue', 'lingua'],
  timezone: ['timezone', 'tz', 'zonahoraria'],
  legal_basis: ['legalbasis', 'basis', 'baselegal'],
  consent_date: ['consentdate', 'consentedat', 'consentat', 'fechaconsentimiento', 'fechadeconsentimiento'],
};

/** Bad rows listed in a report; the counts are always complete. */
export const MAX_REPORTED_ERRORS = 100_000;

export interface ImportRequest {
  /** The list's key or id. */
  list: string | number;
  fileName: string;
  format?: ImportFormat;
  /** The file: bytes, or text for CSV. */
  content: Uint8Array | string;
  /** target → file column header; targets are phone, name, language, timezone, legal_basis, consent_date or a custom field key. */
  mapping?: Record<string, string>;
  /** Legal basis for every row that does not state its own (legal_basis column). */
  basis?: LegalBasis;
  /** What the people were told and how they agreed (stored with the import and referred to by each consent row). */
  evidence: string;
  dryRun: boolean;
  skipBadRows?: boolean;
  /** Channels to create addresses on for each number (default both: the dispatcher picks). */
  media?: ImportMedium[];
  /** The time used for the consent rows and records (tests). */
  now?: Date;
  /** Rows per database batch (default 5,000; tests use small batches to cross batch boundaries). */
  batchSize?: number;
  /** Read and check the file in a worker thread (default: for the commit of a file of WORKER_MIN_BYTES or more, when a worker can run here). */
  worker?: boolean;
}

export interface ImportReport {
  importId: number;
  status: 'dry_run' | 'committed' | 'failed';
  fileName: string;
  format: ImportFormat;
  list: { id: number; key: string; name: string; purpose: string };
  columns: string[];
  mapping: Record<string, string>;
  ignoredColumns: string[];
  rows: {
    /** rows read (blank rows are not counted) */
    total: number;
    valid: number;
    /** rows with at least one problem */
    bad: number;
    /** valid rows that are new contacts / that merge into existing ones */
    new: number;
    merged: number;
    /** what the commit wrote / left out (0 for a dry run) */
    imported: number;
    skipped: number;
  };
  errors: RowError[];
  errorsTruncated: boolean;
  ms: { read: number; database: number; write: number };
}

export const importOptionsSchema = z.object({
  list: z.union([z.string().trim().min(1).max(64), z.number().int().positive()]),
  fileName: z.string().trim().min(1).max(255).refine((n) => !/[\\/\u0000-\u001f]/.test(n), { message: 'a file name only, without folders' }),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.record(z.string().trim().min(1).max(64), z.string().trim().min(1).max(200)).optional(),
  basis: z.enum(LEGAL_BASES).optional(),
  evidence: z.string().trim().min(10, { message: 'say what the people were told and how they agreed (at least 10 characters)' }).max(2000),
  dryRun: z.boolean(),
  skipBadRows: z.boolean().optional(),
  media: z.array(z.enum(MEDIA)).min(1).max(2).optional(),
  now: z.date().optional(),
  batchSize: z.number().int().min(1).max(20_000).optional(),
});

/** "phone=Telefono, name=Nombre, region=Región" → {phone: "Telefono", …}. */
export function parseMappingText(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\n]/)) {
    if (!part.trim()) continue;
    const i = part.indexOf('=');
    if (i <= 0) throw new HttpError(400, 'validation_failed', 'The request is not valid', { mapping: `"${part.trim()}" should be target=Column, such as phone=Telefono` });
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

const headerKey = (s: string) =>
  s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');

function invalid(details: Record<string, string>, message = 'The import cannot start'): HttpError {
  return new HttpError(400, 'import_invalid', message, details);
}

interface ListRow {
  id: number;
  key: string;
  name: string;
  purpose: string;
}

async function findList(knex: Knex, ref: string | number): Promise<ListRow> {
  const row = await knex('lists').where(typeof ref === 'number' ? 'id' : 'key', ref).first('id', 'key', 'name', 'purpose', 'archived_at');
  if (!row) {
    const keys = (await knex('lists').whereNull('archived_at').pluck('key')) as string[];
    const s = typeof ref === 'string' ? nearest(ref, keys) : undefined;
    throw invalid({ list: `there is no list "${ref}"${s ? `; did you mean "${s}"?` : keys.length ? `; the lists are ${keys.join(', ')}` : ''}` });
  }
  if (row.archived_at) throw invalid({ list: `the list "${row.key}" is archived` });
  return { id: toInt(row.id), key: String(row.key), name: String(row.name), purpose: String(row.purpose) };
}

/** Resolves the mapping against the file's headers (guessing what was not given). */
function resolveMapping(headers: string[], given: Record<string, string> | undefined, defs: Map<string, FieldDefinition>): Mapped {
  const errors: Record<string, string> = {};
  const byHeader = new Map<string, number[]>();
  headers.forEach((h, i) => {
    if (h === '') return;
    const k = h.toLowerCase();
    byHeader.set(k, [...(byHeader.get(k) ?? []), i]);
  });
  const used = new Set<number>();
  const builtIn: Mapped['builtIn'] = {};
  const fields: Mapped['fields'] = [];
  const mapping: Record<string, string> = {};
  const targets = new Set<string>([...BUILT_IN_TARGETS, ...defs.keys()]);

  const place = (target: string, index: number) => {
    const col = { index, header: headers[index] };
    used.add(index);
    mapping[target] = headers[index];
    if ((BUILT_IN_TARGETS as readonly string[]).includes(target)) builtIn[target as BuiltInTarget] = col;
    else fields.push({ def: defs.get(target.replace(/^fields\./, ''))!, col });
  };

  for (const [rawTarget, column] of Object.entries(given ?? {})) {
    const target = rawTarget.trim();
    const fieldKey = target.replace(/^fields\./, '');
    if (!targets.has(target) && !defs.has(fieldKey)) {
      const s = nearest(target, targets);
      errors[`mapping.${target}`] = `"${target}" is not something a column can be imported into${s ? `; did you mean "${s}"?` : ''} (phone, name, language, timezone, legal_basis, consent_date or a contact field: ${[...defs.keys()].join(', ') || 'none defined'})`;
      continue;
    }
    const found = byHeader.get(column.toLowerCase());
    if (!found) {
      const s = nearest(column, headers.filter(Boolean));
      errors[`mapping.${target}`] = `the file has no column "${column}"${s ? `; did you mean "${s}"?` : ''} (the columns are ${headers.filter(Boolean).join(', ')})`;
      continue;
    }
    if (found.length > 1) {
      errors[`mapping.${target}`] = `the file has ${found.length} columns headed "${column}"; rename them so that each is unique`;
      continue;
    }
    place(target.startsWith('fields.') || !(BUILT_IN_TARGETS as readonly string[]).includes(target) ? fieldKey : target, found[0]);
  }
  if (Object.keys(errors).length) throw invalid(errors, 'The column mapping does not fit the file');

  // Guess the rest from the headers: built-in words, then field keys and labels.
  const guess = (target: string, words: string[]) => {
    if (mapping[target]) return;
    const i = headers.findIndex((h, idx) => !used.has(idx) && h !== '' && words.includes(headerKey(h)));
    if (i >= 0) place(target, i);
  };
  for (const t of BUILT_IN_TARGETS) guess(t, HEADER_GUESSES[t]);
  for (const def of defs.values()) {
    if (!mapping[def.key] && !fields.some((f) => f.def.key === def.key)) guess(def.key, [headerKey(def.key), headerKey(def.label)]);
  }
  if (!builtIn.phone) {
    throw invalid({ 'mapping.phone': `no column holds the phone numbers: map one, such as phone=${headers.find(Boolean) ?? 'Phone'} (the columns are ${headers.filter(Boolean).join(', ')})` }, 'The column mapping does not fit the file');
  }
  const ignored = headers.filter((h, i) => h !== '' && !used.has(i));
  return { builtIn, fields, mapping, ignored };
}

/** What the database knows about a batch of numbers. */
interface BatchCheck {
  /** number → existing contact id, for the rows that passed */
  existing: Map<string, number>;
  /** the rows that passed */
  valid: GoodRow[];
  errors: RowError[];
}

/** State carried from batch to batch: which existing contact a row already claimed. */
interface CheckState {
  contactRow: Map<number, number>;
  /** null until the first batch asks whether any tombstone exists */
  anyTombstone: boolean | null;
}

export const BATCH = 5000;

/** Files from this size (about 20,000 rows of CSV) are read and checked in a worker thread. */
export const WORKER_MIN_BYTES = 1_000_000;

/** PostgreSQL advisory lock key held by a committing import (an arbitrary constant of this module). */
const IMPORT_LOCK = 730_330_101;

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The database's view of a batch of good rows, with one query per kind of fact (never per row):
 * which numbers are existing contacts, and which rows cannot be imported because of who the
 * person is (said STOP, blocked, left this list, erased without new consent).
 */
async function checkBatch(knex: Knex, rows: GoodRow[], list: ListRow, phoneHeader: string, state: CheckState): Promise<BatchCheck> {
  const existing = new Map<string, { contactId: number; status: string; stoppedAt: Date | null }>();
  // Both channels named, so that the unique (channel, address) index answers.
  const found = await knex('contact_addresses as a')
    .join('contacts as c', 'c.id', 'a.contact_id')
    .whereIn('a.channel', MEDIA as unknown as string[])
    .whereIn('a.address', rows.map((r) => r.e164))
    .whereNull('c.erased_at')
    .orderBy('c.id')
    .select('a.address', 'c.id', 'c.status', 'c.stopped_at');
  for (const f of found) {
    if (!existing.has(f.address)) existing.set(String(f.address), { contactId: toInt(f.id), status: String(f.status), stoppedAt: toDateOrNull(f.stopped_at) });
  }
  const left = new Map<number, Date | null>();
  if (existing.size) {
    const ended = await knex('subscriptions')
      .where('list_id', list.id)
      .whereIn('contact_id', [...new Set([...existing.values()].map((e) => e.contactId))])
      .where('status', 'ended')
      .where('ended_reason', 'leave')
      .select('contact_id', 'ended_at');
    for (const e of ended) left.set(toInt(e.contact_id), toDateOrNull(e.ended_at));
  }
  // Tombstones: keyed hashes of erased numbers. Most installs have none: then nothing is hashed.
  const tombstoned = new Map<string, Date>();
  if (state.anyTombstone === null) state.anyTombstone = Boolean(await knex('erasure_tombstones').first('address_hash'));
  if (state.anyTombstone) {
    const hashes = new Map<string, string>();
    for (const r of rows) if (!existing.has(r.e164)) hashes.set(await addressHash(knex, r.e164), r.e164);
    if (hashes.size) {
      const hits = await knex('erasure_tombstones').whereIn('address_hash', [...hashes.keys()]).select('address_hash', 'erased_at');
      for (const h of hits) tombstoned.set(hashes.get(String(h.address_hash))!, toDate(h.erased_at));
    }
  }
  const errors: RowError[] = [];
  const valid: GoodRow[] = [];
  const ids = new Map<string, number>();
  const day = (d: Date | null) => (d ? ` on ${d.toISOString().slice(0, 10)}` : '');
  const bad = (r: GoodRow, reason: string) => errors.push({ row: r.row, column: phoneHeader, value: r.e164, reason });
  for (const r of rows) {
    const e = existing.get(r.e164);
    if (e) {
      const first = state.contactRow.get(e.contactId);
      if (first !== undefined) bad(r, `duplicate within the file: another number of the same contact as row ${first}`);
      else if (e.status === 'stopped') bad(r, `this person said STOP${day(e.stoppedAt)}: only they can start again (by writing to the programme)`);
      else if (e.status === 'blocked') bad(r, 'this contact is blocked');
      else if (left.has(e.contactId)) bad(r, `this person left the list "${list.key}" themselves${day(left.get(e.contactId) ?? null)}: only they can rejoin`);
      else {
        state.contactRow.set(e.contactId, r.row);
        ids.set(r.e164, e.contactId);
        valid.push(r);
      }
      continue;
    }
    const erasedAt = tombstoned.get(r.e164);
    if (erasedAt && !(r.consentAt && r.consentAt.getTime() > erasedAt.getTime())) {
      bad(r, `this number belonged to a contact erased${day(erasedAt)}: it needs new consent, given after that date (map a consent_date column)`);
      continue;
    }
    valid.push(r);
  }
  return { existing: ids, valid, errors };
}

/** Ids for n new rows of a table, ours alone: PostgreSQL sequence values; on SQLite (one writer, inside the transaction) the next ids after the largest ever used. */
async function reserveIds(trx: Knex, table: 'contacts' | 'consents', n: number): Promise<number[]> {
  if (n === 0) return [];
  if (dialectOf(trx) === 'postgresql') {
    const res = await trx.raw('select nextval(pg_get_serial_sequence(?, ?)) as id from generate_series(1, ?)', [table, 'id', n]);
    return (res.rows as { id: unknown }[]).map((r) => toInt(r.id)).sort((a, b) => a - b);
  }
  const [{ m }] = await trx(table).max({ m: 'id' });
  const seq = await trx('sqlite_sequence').where('name', table).first('seq');
  const base = Math.max(toInt(m ?? 0), toInt(seq?.seq ?? 0));
  return Array.from({ length: n }, (_, i) => base + 1 + i);
}

type PgType = 'integer' | 'text' | 'boolean' | 'timestamptz' | 'jsonb';

/**
 * A column of a bulk insert: its values travel in the rows (`row`), are the same for the whole
 * batch and travel once as a binding (`same`), or are the ids reserved for the rows (`ids`, one
 * per row: computed from the row's position when they are consecutive, as on SQLite, and
 * otherwise sent with the rows).
 */
export type BulkColumn = { name: string; type: PgType } & ({ from: 'row' } | { from: 'same'; value: unknown } | { from: 'ids'; ids: number[] });

const rowCol = (name: string, type: PgType): BulkColumn => ({ name, type, from: 'row' });
const sameCol = (name: string, type: PgType, value: unknown): BulkColumn => ({ name, type, from: 'same', value });

/**
 * Set-based inserts: each batch of rows travels as ONE bound parameter, a JSON array of arrays
 * holding only the columns that differ from row to row, and the database unpacks it (`json_each`
 * on SQLite, `json_array_elements` on PostgreSQL) in an `insert … select`. Binding hundreds of
 * thousands of separate values costs more than writing the rows, and every value in the JSON is
 * parsed again for each column read from its row: what is the same for the whole batch (the list,
 * the purpose, the evidence, the time) is bound once instead, and reserved ids are computed from
 * the row's position. The SQL text is constant for a table: identifiers are bindings, and the only
 * generated parts are each column's position and its declared type. `suffix` is constant SQL too
 * (on conflict …).
 */
/** Exported for the tests. */
export async function bulkInsert(trx: Knex, table: string, columns: BulkColumn[], rows: unknown[][], suffix: { sql: string; bindings: unknown[] } = { sql: '', bindings: [] }): Promise<void> {
  if (rows.length === 0) return;
  const pg = dialectOf(trx) === 'postgresql';
  const names = columns.map(() => '??').join(', ');
  const value = pg
    ? (v: unknown) => (v instanceof Date ? v.toISOString() : v)
    : (v: unknown) => (v instanceof Date ? v.getTime() : v === true ? 1 : v === false ? 0 : v);
  const width = rows[0].length;
  for (let from = 0; from < rows.length; from += 20_000) {
    let batch = rows.slice(from, from + 20_000);
    const select: string[] = [];
    const bindings: unknown[] = [];
    let at = 0;
    for (const c of columns) {
      if (c.from === 'row') {
        select.push(pg ? `(v.value ->> ${at})::${c.type}` : `value ->> ${at}`);
        at++;
      } else if (c.from === 'same') {
        select.push(pg ? `?::${c.type}` : '?');
        bindings.push(value(c.value));
      } else {
        const ids = c.ids.slice(from, from + batch.length);
        if (ids.length !== batch.length) throw new Error(`bulk insert into ${table}: ${ids.length} ids for ${batch.length} rows`);
        if (ids[ids.length - 1] - ids[0] === ids.length - 1) {
          // Consecutive: the first id plus the row's position (json_each's key; the ordinality).
          select.push(pg ? '(?::integer + v.n - 1)' : '(? + key)');
          bindings.push(ids[0]);
        } else {
          select.push(pg ? `(v.value ->> ${width})::integer` : `value ->> ${width}`);
          batch = batch.map((r, i) => [...r, ids[i]]);
        }
      }
    }
    const sql = pg
      ? `insert into ?? (${names}) select ${select.join(', ')} from json_array_elements(?::json) with ordinality as v(value, n) ${suffix.sql}`
      : `insert into ?? (${names}) select ${select.join(', ')} from json_each(?) where true ${suffix.sql}`;
    const payload = JSON.stringify(batch.map((r) => r.map(value)));
    await trx.raw(sql, [table, ...columns.map((c) => c.name), ...bindings, payload, ...suffix.bindings] as Knex.RawBinding[]);
  }
}

/** Field merges and attribute updates for contacts that already exist: one UPDATE … FROM per batch. */
async function updateExisting(trx: Knex, updates: { id: number; name: string | null; language: string | null; timezone: string | null; fields: Record<string, FieldValue> | null }[], now: Date): Promise<void> {
  const sqlite = dialectOf(trx) === 'sqlite';
  for (const batch of chunks(updates, 2000)) {
    const payload = JSON.stringify(batch);
    if (sqlite) {
      await trx.raw(
        `update contacts set
           name = coalesce(v.name, contacts.name),
           language = coalesce(v.language, contacts.language),
           timezone = coalesce(v.timezone, contacts.timezone),
           fields = case when v.fields is null then contacts.fields else json_patch(coalesce(contacts.fields, '{}'), v.fields) end,
           updated_at = ?
         from (select json_extract(value, '$.id') as id, json_extract(value, '$.name') as name, json_extract(value, '$.language') as language,
                      json_extract(value, '$.timezone') as timezone, json_extract(value, '$.fields') as fields
               from json_each(?)) as v
         where contacts.id = v.id`,
        [now, payload],
      );
    } else {
      await trx.raw(
        `update contacts as c set
           name = coalesce(v.name, c.name),
           language = coalesce(v.language, c.language),
           timezone = coalesce(v.timezone, c.timezone),
           fields = case when v.fields is null then c.fields else coalesce(c.fields, '{}'::jsonb) || v.fields end,
           updated_at = ?
         from jsonb_to_recordset(?::jsonb) as v(id integer, name text, language text, timezone text, fields jsonb)
         where c.id = v.id`,
        [now, payload],
      );
    }
  }
}

function staffRef(actor: Actor): string {
  if (actor.type === 'staff') return `staff user ${actor.id}`;
  if (actor.type === 'token') return `token ${actor.id}`;
  return actor.label;
}

class Rejected extends Error {}

interface WriteContext {
  trx: Knex;
  list: ListRow;
  media: ImportMedium[];
  now: Date;
  evidenceRef: string;
  staffUserId: number | null;
}

/** Writes one checked batch: contacts (new and merged), addresses, consent rows and state, subscriptions. */
async function writeBatch(w: WriteContext, check: BatchCheck): Promise<{ fresh: number; merged: number }> {
  const { trx, list, now } = w;
  // In number order: index inserts land next to each other (real files are not sorted).
  check.valid.sort((a, b) => (a.e164 < b.e164 ? -1 : a.e164 > b.e164 ? 1 : 0));
  const fresh = check.valid.filter((r) => !check.existing.has(r.e164));
  const merging = check.valid.filter((r) => check.existing.has(r.e164));
  const idOf = new Map(check.existing);
  const contactIds = await reserveIds(trx, 'contacts', fresh.length);
  fresh.forEach((r, i) => idOf.set(r.e164, contactIds[i]));
  await bulkInsert(
    trx,
    'contacts',
    [
      { name: 'id', type: 'integer', from: 'ids', ids: contactIds },
      rowCol('name', 'text'),
      rowCol('language', 'text'),
      rowCol('timezone', 'text'),
      rowCol('fields', 'jsonb'),
      sameCol('status', 'text', 'active'),
      sameCol('created_at', 'timestamptz', now),
      sameCol('updated_at', 'timestamptz', now),
    ],
    fresh.map((r) => [r.name, r.language, r.timezone, r.fields ? JSON.stringify(r.fields) : null]),
  );
  if (merging.length) await updateExisting(trx, merging.map((r) => ({ id: idOf.get(r.e164)!, name: r.name, language: r.language, timezone: r.timezone, fields: r.fields })), now);

  // Addresses: an existing contact gains the medium it lacked; existing addresses stay as they are.
  for (const m of w.media) {
    await bulkInsert(
      trx,
      'contact_addresses',
      [rowCol('contact_id', 'integer'), rowCol('address', 'text'), sameCol('channel', 'text', m), sameCol('kind', 'text', 'phone'), sameCol('opted_out', 'boolean', false), sameCol('created_at', 'timestamptz', now)],
      check.valid.map((r) => [idOf.get(r.e164), r.e164]),
      { sql: 'on conflict (??, ??) do nothing', bindings: ['channel', 'address'] },
    );
  }

  // One consent row per person (the ledger only grows), the current state, the subscription.
  const consentIds = await reserveIds(trx, 'consents', check.valid.length);
  const consents = check.valid.map((r, i) => ({ id: consentIds[i], contactId: idOf.get(r.e164)!, basis: r.basis, at: r.consentAt ?? now }));
  await bulkInsert(
    trx,
    'consents',
    [
      { name: 'id', type: 'integer', from: 'ids', ids: consentIds },
      rowCol('contact_id', 'integer'),
      rowCol('legal_basis', 'text'),
      rowCol('at', 'timestamptz'),
      sameCol('purpose', 'text', list.purpose),
      sameCol('action', 'text', 'grant'),
      sameCol('channel', 'text', 'import'),
      sameCol('method', 'text', 'import'),
      sameCol('evidence_type', 'text', 'import'),
      sameCol('evidence_ref', 'text', w.evidenceRef),
      sameCol('proxy', 'boolean', false),
      sameCol('staff_user_id', 'integer', w.staffUserId),
    ],
    consents.map((c) => [c.contactId, c.basis, c.at]),
  );
  // The state follows the latest act: a back-dated import row does not override newer consent or withdrawal.
  await bulkInsert(
    trx,
    'consent_state',
    [rowCol('contact_id', 'integer'), rowCol('consent_id', 'integer'), rowCol('at', 'timestamptz'), sameCol('purpose', 'text', list.purpose), sameCol('granted', 'boolean', true)],
    consents.map((c) => [c.contactId, c.id, c.at]),
    {
      sql: 'on conflict (??, ??) do update set ?? = excluded.??, ?? = excluded.??, ?? = excluded.?? where ?? <= excluded.??',
      bindings: ['contact_id', 'purpose', 'granted', 'granted', 'consent_id', 'consent_id', 'at', 'at', 'consent_state.at', 'at'],
    },
  );
  await bulkInsert(
    trx,
    'subscriptions',
    [rowCol('contact_id', 'integer'), rowCol('consent_id', 'integer'), sameCol('list_id', 'integer', list.id), sameCol('status', 'text', 'active'), sameCol('joined_at', 'timestamptz', now)],
    consents.map((c) => [c.contactId, c.id]),
    {
      sql: 'on conflict (??, ??) do update set ?? = case when ?? = ? then ?? else excluded.?? end, ?? = ?, ?? = excluded.??, ?? = null, ?? = null',
      bindings: ['list_id', 'contact_id', 'joined_at', 'subscriptions.status', 'active', 'subscriptions.joined_at', 'joined_at', 'status', 'active', 'consent_id', 'consent_id', 'ended_at', 'ended_reason'],
    },
  );
  return { fresh: fresh.length, merged: merging.length };
}

/**
 * Runs an import — a dry run, or a commit in one transaction — and returns its report.
 * Request-level problems (unknown list, mapping that does not fit, unreadable file, no
 * evidence) throw HttpError 400 import_invalid.
 *
 * Rows flow in batches: while the database checks (and, for a commit, writes) one batch — on
 * SQLite that work runs on its own thread — the next batch is parsed and checked in JavaScript.
 * A commit writes as it goes; at the first bad row, unless bad rows are skipped, it stops writing,
 * keeps checking (to report every bad row), and rolls the whole transaction back.
 */
export async function runImport(services: { db: Database; config: Pick<Config, 'DEFAULT_COUNTRY'> }, actor: Actor, input: ImportRequest): Promise<ImportReport> {
  const parsedOpts = importOptionsSchema.safeParse({ ...input, content: undefined });
  if (!parsedOpts.success) {
    throw invalid(Object.fromEntries(parsedOpts.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])), 'The import request is not valid');
  }
  const opts = parsedOpts.data;
  const { db } = services;
  const now = opts.now ?? new Date();
  const media = opts.media ?? [...MEDIA];

  const list = await findList(db.knex, opts.list);
  const defs = await fieldDefinitions(db.knex);
  const bytes = input.content;
  const format = opts.format ?? detectFormat(opts.fileName, typeof bytes === 'string' ? undefined : bytes);
  if (bytes.length === 0) throw invalid({ file: 'the file is empty' });
  let source;
  try {
    source = await readSource(format, bytes);
  } catch (e) {
    if (e instanceof FileError) throw invalid({ file: e.message });
    throw e;
  }
  const mapped = resolveMapping(source.headers, opts.mapping, defs);
  const phoneHeader = mapped.builtIn.phone!.header;
  const staffUserId = actor.type === 'staff' ? actor.id : (actor.userId ?? null);

  const record = async (k: Knex, status: ImportReport['status'], r: ImportReport['rows']) => {
    const [row] = await k('imports')
      .insert({
        list_id: list.id,
        file_name: opts.fileName,
        status,
        legal_basis: opts.basis ?? 'per_row',
        evidence: opts.evidence,
        rows_total: r.total,
        rows_imported: r.imported,
        rows_skipped: r.skipped,
        rows_new: r.new,
        rows_merged: r.merged,
        rows_bad: r.bad,
        format,
        mapping: JSON.stringify(mapped.mapping),
        created_by_id: staffUserId,
        created_at: now,
      })
      .returning('id');
    return toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  };

  // Counters and findings, filled batch by batch.
  const errors: RowError[] = [];
  const badRows = new Set<number>();
  const checkState: CheckState = { contactRow: new Map(), anyTombstone: null };
  const counts = { total: 0, valid: 0, new: 0, merged: 0, imported: 0 };
  const ms = { read: 0, database: 0, write: 0 };
  const started = performance.now();

  // A big file's commit reads and checks it in a worker thread, beside the database work
  // (import-worker.ts); its dry run starts that worker for the commit.
  const checkOptions = { basis: opts.basis, defaultCountry: services.config.DEFAULT_COUNTRY, now, batchSize: opts.batchSize ?? BATCH };
  const big = bytes.length >= WORKER_MIN_BYTES && importWorkerAvailable();
  const inWorker = input.worker ?? (big && !opts.dryRun);
  if (big && opts.dryRun && input.worker === undefined) warmImportWorker();

  /** Reads, checks and hands over batches of good rows to `flush`, which runs one batch behind. */
  const pump = async (flush: (rows: GoodRow[]) => Promise<void>) => {
    let inflight: Promise<void> = Promise.resolve();
    const hand = (rows: GoodRow[]) => {
      const previous = inflight;
      inflight = previous.then(() => flush(rows));
      return previous;
    };
    let batches: AsyncGenerator<CheckedBatch>;
    if (inWorker) {
      // The worker reads the file from its start: this thread only needed the headers.
      await (source.rows as Partial<AsyncGenerator<unknown>>).return?.(undefined);
      batches = workerBatches({ format, content: bytes, mapped, options: checkOptions });
    } else {
      batches = checkRows(source.rows, mapped, checkOptions);
    }
    try {
      for await (const b of batches) {
        counts.total = b.total;
        for (const e of b.errors) errors.push(e);
        for (const row of b.badRows) badRows.add(row);
        // Wait for the batch before last: at most one batch is with the database while the next is read.
        if (b.rows.length) await hand(b.rows);
      }
      await inflight;
    } catch (e) {
      await inflight.catch(() => undefined);
      if (e instanceof FileError) throw invalid({ file: e.message });
      throw e;
    }
    if (counts.total === 0) throw invalid({ file: 'the file has a header but no rows' });
  };

  const checkAndCount = async (knex: Knex, rows: GoodRow[]): Promise<BatchCheck> => {
    const t0 = performance.now();
    const c = await checkBatch(knex, rows, list, phoneHeader, checkState);
    for (const e of c.errors) badRows.add(e.row);
    errors.push(...c.errors);
    counts.valid += c.valid.length;
    counts.merged += c.existing.size;
    counts.new += c.valid.length - c.existing.size;
    ms.database += performance.now() - t0;
    return c;
  };

  const report = (status: ImportReport['status'], importId: number): ImportReport => {
    errors.sort((a, b) => a.row - b.row);
    ms.read = performance.now() - started - ms.database - ms.write;
    return {
      importId,
      status,
      fileName: opts.fileName,
      format,
      list,
      columns: source.headers,
      mapping: mapped.mapping,
      ignoredColumns: mapped.ignored,
      rows: { total: counts.total, valid: counts.valid, bad: badRows.size, new: counts.new, merged: counts.merged, imported: counts.imported, skipped: status === 'committed' ? badRows.size : 0 },
      errors: errors.slice(0, MAX_REPORTED_ERRORS),
      errorsTruncated: errors.length > MAX_REPORTED_ERRORS,
      ms: { read: Math.round(ms.read), database: Math.round(ms.database), write: Math.round(ms.write) },
    };
  };

  const auditIt = (r: ImportReport) =>
    audit(db, actor, {
      action: r.status === 'dry_run' ? 'contacts.import_dry_run' : r.status === 'committed' ? 'contacts.import' : 'contacts.import_rejected',
      entityType: 'import',
      entityId: r.importId,
      detail: { list: list.key, format, rows: r.rows.total, valid: r.rows.valid, bad: r.rows.bad, new: r.rows.new, merged: r.rows.merged, imported: r.rows.imported, skipped: r.rows.skipped, skipBadRows: Boolean(opts.skipBadRows) },
    });

  // ------------------------------------------------------------------ dry run: read-only
  if (opts.dryRun) {
    await pump(async (rows) => {
      await checkAndCount(db.knex, rows);
    });
    const r = report('dry_run', 0);
    r.importId = await record(db.knex, 'dry_run', r.rows);
    await auditIt(r);
    return r;
  }

  // ------------------------------------------------------------------ commit: one transaction
  let committed: ImportReport | null = null;
  try {
    await db.knex.transaction(async (trx) => {
      // One import at a time: two imports of the same new number must not both create a contact.
      // (On SQLite the import's own row, written first, takes the database's write lock.)
      if (dialectOf(trx) === 'postgresql') await trx.raw('select pg_advisory_xact_lock(?)', [IMPORT_LOCK]);
      const importId = await record(trx, 'committed', { total: 0, valid: 0, bad: 0, new: 0, merged: 0, imported: 0, skipped: 0 });
      const ref = ` by ${staffRef(actor)}`;
      const w: WriteContext = { trx, list, media, now, evidenceRef: `import:${importId} ${opts.fileName}`.slice(0, 200 - ref.length) + ref, staffUserId };
      await pump(async (rows) => {
        const c = await checkAndCount(trx, rows);
        // All or nothing: after the first bad row (unless skipping), only check.
        if (badRows.size > 0 && !opts.skipBadRows) return;
        const t0 = performance.now();
        await writeBatch(w, c);
        counts.imported += c.valid.length;
        ms.write += performance.now() - t0;
      });
      if ((badRows.size > 0 && !opts.skipBadRows) || counts.imported === 0) throw new Rejected();
      const r = report('committed', importId);
      await trx('imports').where('id', importId).update({ rows_total: r.rows.total, rows_imported: r.rows.imported, rows_skipped: r.rows.skipped, rows_new: r.rows.new, rows_merged: r.rows.merged, rows_bad: r.rows.bad });
      committed = r;
    });
  } catch (e) {
    if (!(e instanceof Rejected)) throw e;
  }
  if (committed) {
    await auditIt(committed);
    return committed;
  }
  // Rejected: the transaction rolled back; the attempt is recorded as failed.
  counts.imported = 0;
  const r = report('failed', 0);
  r.importId = await record(db.knex, 'failed', r.rows);
  await auditIt(r);
  return r;
}

// ------------------------------------------------------------------------------- history

export interface ImportRecord {
  id: number;
  listId: number | null;
  listKey: string | null;
  fileName: string;
  format: string | null;
  status: string;
  legalBasis: string;
  evidence: string;
  rowsTotal: number;
  rowsImported: number;
  rowsSkipped: number;
  rowsNew: number;
  rowsMerged: number;
  rowsBad: number;
  createdById: number | null;
  createdAt: string;
}

function readImport(r: Record<string, unknown>): ImportRecord {
  return {
    id: toInt(r.id),
    listId: r.list_id === null ? null : toInt(r.list_id),
    listKey: (r.list_key as string | null) ?? null,
    fileName: String(r.file_name),
    format: (r.format as string | null) ?? null,
    status: String(r.status),
    legalBasis: String(r.legal_basis),
    evidence: String(r.evidence),
    rowsTotal: toInt(r.rows_total),
    rowsImported: toInt(r.rows_imported),
    rowsSkipped: toInt(r.rows_skipped),
    rowsNew: toInt(r.rows_new),
    rowsMerged: toInt(r.rows_merged),
    rowsBad: toInt(r.rows_bad),
    createdById: r.created_by_id === null || r.created_by_id === undefined ? null : toInt(r.created_by_id),
    createdAt: toDate(r.created_at).toISOString(),
  };
}

export async function listImports(knex: Knex, opts: { before?: number; limit?: number } = {}): Promise<{ data: ImportRecord[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const q = knex('imports as i').leftJoin('lists as l', 'l.id', 'i.list_id').select('i.*', 'l.key as list_key').orderBy('i.id', 'desc').limit(limit);
  if (opts.before) q.where('i.id', '<', opts.before);
  const rows = (await q).map(readImport);
  return { data: rows, next: rows.length === limit ? rows[rows.length - 1].id : null };
}

export async function getImport(knex: Knex, id: number): Promise<ImportRecord> {
  const row = await knex('imports as i').leftJoin('lists as l', 'l.id', 'i.list_id').where('i.id', id).first('i.*', 'l.key as list_key');
  if (!row) throw notFound('There is no such import');
  return readImport(row);
}
