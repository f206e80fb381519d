/**
 * Contact imports (service level, SQLite and PostgreSQL): the dry run lists exactly the bad rows
 * with their file row, column and reason and changes nothing; a commit is all or nothing unless
 * bad rows are skipped; duplicates merge on the normalised number; consent rows, state and
 * subscriptions are written; tombstoned numbers need new consent; XLSX works like CSV.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ExcelJS from 'exceljs';
import { testServices } from '../helpers/services.js';
import { makeUser } from '../helpers/app.js';
import type { RouterServices } from '../../src/messaging/types.js';
import type { Actor } from '../../src/staff/audit.js';
import { listAudit } from '../../src/staff/audit.js';
import { toBool, toDate, toInt } from '../../src/db/values.js';
import { bulkInsert, phoneNormaliser, runImport, WORKER_MIN_BYTES, type ImportRequest } from '../../src/contacts/import.js';
import { importWorkerStats } from '../../src/contacts/import-worker-client.js';
import { normalisePhone } from '../../src/contacts/addresses.js';
import { addressHash } from '../../src/contacts/pseudonyms.js';
import { HttpError } from '../../src/http/errors.js';
import { generateCsv, IMPORT_MAPPING } from '../bench/import-data.js';

let s: RouterServices & { close(): Promise<void> };
let actor: Actor;
let listId: number;
const NOW = new Date('2026-03-01T12:00:00Z');

async function insertId(table: string, row: Record<string, unknown>): Promise<number> {
  const [r] = await s.db.knex(table).insert(row).returning('id');
  return toInt(typeof r === 'object' ? r.id : r);
}

async function counts() {
  const k = s.db.knex;
  const n = async (t: string) => toInt((await k(t).count({ n: '*' }))[0].n);
  return { contacts: await n('contacts'), addresses: await n('contact_addresses'), consents: await n('consents'), state: await n('consent_state'), subscriptions: await n('subscriptions') };
}

const EVIDENCE = 'Registered at the Tumbes help desk; told about weekly updates over WhatsApp and how to stop (form v2).';
const request = (content: string | Uint8Array, extra: Partial<ImportRequest> = {}): ImportRequest => ({
  list: 'migrants',
  fileName: 'people.csv',
  content,
  mapping: { phone: 'Telefono', name: 'Nombre', age_group: 'Edad', household_size: 'Hogar', arrived: 'Llegada' },
  basis: 'consent',
  evidence: EVIDENCE,
  dryRun: true,
  now: NOW,
  ...extra,
});

// Semicolon-separated, as Spanish-locale spreadsheets export. Line numbers are in the comments of the test below.
const CSV = [
  'Telefono;Nombre;Idioma;Región;Edad;Hogar;Llegada', // 1
  '+51 987 650 001;Ana;es;Lima;18-24;4;2024-01-10', // 2 new
  '987650002;Bruno;ES-pe;Lima;25-39;2;', // 3 new, national format
  '12345;Bad number;es;Lima;;;', // 4 invalid number
  '0051987650001;Ana again;es;Lima;;;', // 5 duplicate of 2
  '987650003;Carla;english;Lima;;;', // 6 bad language
  '987650004;Dan;es;Lima;18-25;;', // 7 unknown choice
  '987650005;Eva;es;Lima;18-24;cuatro;', // 8 bad number
  '987650006;Gil;es;Lima;;;31/12/2024', // 9 bad date
  '987650010;Old Name Fixed;;Lima;60+;;', // 10 existing contact: merged
  '987650011;Stopped;es;;;;', // 11 said STOP
  '', // 12 blank line: ignored
  '987650012;Left;es;;;;', // 13 left the list
  '987650013;Erased;es;;;;', // 14 tombstoned
  '987650007;"Fay', // 15 a name spanning two lines
  'Second line";es;Lima;40-59;3;2025-06-01', // 16
  '987650008;Hugo;pt-BR;Piura;;;', // 17 new
].join('\n');

beforeAll(async () => {
  s = await testServices({ DEFAULT_COUNTRY: 'PE' });
  const user = await makeUser(s.db, 'admin');
  actor = { type: 'staff', id: user.id, userId: user.id, label: user.email, role: 'admin' };
  const k = s.db.knex;
  const now = new Date();
  await k('contact_fields').insert([
    { key: 'region', label: 'Region', type: 'text', created_at: now },
    { key: 'age_group', label: 'Age group', type: 'choice', choices: JSON.stringify(['18-24', '25-39', '40-59', '60+']), created_at: now },
    { key: 'household_size', label: 'Household size', type: 'number', created_at: now },
    { key: 'arrived', label: 'Arrival date', type: 'date', created_at: now },
  ]);
  listId = await insertId('lists', { key: 'migrants', name: 'Migrants', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now });
  const contact = async (address: string, extra: Record<string, unknown>) => {
    const id = await insertId('contacts', { status: 'active', created_at: now, updated_at: now, ...extra });
    await k('contact_addresses').insert({ contact_id: id, channel: 'sms', kind: 'phone', address, created_at: now });
    return id;
  };
  await contact('+51987650010', { name: 'Old Name', language: 'en', fields: JSON.stringify({ region: 'Tumbes', household_size: 5 }) });
  await contact('+51987650011', { name: 'S', status: 'stopped', stopped_at: new Date('2026-02-10T08:00:00Z') });
  const left = await contact('+51987650012', { name: 'L' });
  await k('subscriptions').insert({ list_id: listId, contact_id: left, status: 'ended', joined_at: now, ended_at: new Date('2026-02-11T08:00:00Z'), ended_reason: 'leave' });
  await k('erasure_tombstones').insert({ address_hash: await addressHash(k, '+51987650013'), erased_at: new Date('2026-01-15T00:00:00Z') });
});
afterAll(() => s?.close());

describe('dry run', () => {
  it('lists exactly the bad rows, with the row in the file, the column and why, and changes no contact', async () => {
    const before = await counts();
    const report = await runImport(s, actor, request(CSV));
    expect(report.status).toBe('dry_run');
    expect(report.errors.map((e) => [e.row, e.column])).toEqual([
      [4, 'Telefono'],
      [5, 'Telefono'],
      [6, 'Idioma'],
      [7, 'Edad'],
      [8, 'Hogar'],
      [9, 'Llegada'],
      [11, 'Telefono'],
      [13, 'Telefono'],
      [14, 'Telefono'],
    ]);
    const reason = (row: number) => report.errors.find((e) => e.row === row)!.reason;
    expect(reason(4)).toMatch(/^invalid phone number: /);
    expect(reason(5)).toBe('duplicate within the file: the same number as row 2');
    expect(reason(6)).toBe('not a language code such as es, en, pt-BR');
    expect(reason(7)).toMatch(/unknown choice value for Age group: "18-25" is not one of 18-24, 25-39, 40-59, 60\+/);
    expect(reason(8)).toMatch(/Household size: "cuatro" is not a number/);
    expect(reason(9)).toMatch(/Arrival date: "31\/12\/2024" is not a date written YYYY-MM-DD/);
    expect(reason(11)).toBe('this person said STOP on 2026-02-10: only they can start again (by writing to the programme)');
    expect(reason(13)).toMatch(/left the list "migrants" themselves on 2026-02-11/);
    expect(reason(14)).toMatch(/belonged to a contact erased on 2026-01-15: it needs new consent/);
    expect(report.errors.find((e) => e.row === 4)!.value).toBe('12345');
    expect(report.rows).toEqual({ total: 14, valid: 5, bad: 9, new: 4, merged: 1, imported: 0, skipped: 0 });
    expect(report.mapping).toMatchObject({ phone: 'Telefono', name: 'Nombre', language: 'Idioma', region: 'Región' });
    expect(report.ignoredColumns).toEqual([]);
    expect(await counts()).toEqual(before);
    const rec = await s.db.knex('imports').where('id', report.importId).first();
    expect(rec).toMatchObject({ status: 'dry_run', file_name: 'people.csv' });
    expect(toInt(rec.rows_bad)).toBe(9);
    const events = await listAudit(s.db, { entityType: 'import', entityId: String(report.importId) });
    expect(events[0].action).toBe('contacts.import_dry_run');
    expect(JSON.stringify(events[0].detail)).not.toMatch(/98765/);
  });

  it('asks for a consent basis on every row when the import states none', async () => {
    const csv = 'phone,basis\n987650031,legitimate_interest\n987650032,\n987650033,because\n';
    const report = await runImport(s, actor, request(csv, { basis: undefined, mapping: { phone: 'phone', legal_basis: 'basis' } }));
    expect(report.errors).toEqual([
      { row: 3, column: 'basis', value: null, reason: 'missing consent basis: the row has no legal basis and the import states none' },
      { row: 4, column: 'basis', value: 'because', reason: expect.stringMatching(/^not a legal basis: use one of consent, legitimate_interest/) },
    ]);
  });

  it('refuses a mapping that does not fit the file, naming the column', async () => {
    const err = await runImport(s, actor, request(CSV, { mapping: { phone: 'Telefone' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).details).toEqual({ 'mapping.phone': expect.stringMatching(/the file has no column "Telefone"; did you mean "Telefono"\?/) });
    const noPhone = await runImport(s, actor, request('Nombre,Edad\nAna,18-24\n', { mapping: {} })).catch((e: unknown) => e);
    expect((noPhone as HttpError).details).toEqual({ 'mapping.phone': expect.stringMatching(/no column holds the phone numbers/) });
    const unknownTarget = await runImport(s, actor, request(CSV, { mapping: { phone: 'Telefono', regoin: 'Región' } })).catch((e: unknown) => e);
    expect((unknownTarget as HttpError).details!['mapping.regoin']).toMatch(/did you mean "region"/);
    const noList = await runImport(s, actor, request(CSV, { list: 'migrant' })).catch((e: unknown) => e);
    expect((noList as HttpError).details).toEqual({ list: 'there is no list "migrant"; did you mean "migrants"?' });
    const noEvidence = await runImport(s, actor, request(CSV, { evidence: ' ' })).catch((e: unknown) => e);
    expect((noEvidence as HttpError).details).toHaveProperty('evidence');
  });
});

describe('commit', () => {
  it('writes nothing when there are bad rows and skipping was not asked for', async () => {
    const before = await counts();
    const report = await runImport(s, actor, request(CSV, { dryRun: false }));
    expect(report.status).toBe('failed');
    expect(report.rows.bad).toBe(9);
    expect(report.rows.imported).toBe(0);
    expect(await counts()).toEqual(before);
    expect((await s.db.knex('imports').where('id', report.importId).first()).status).toBe('failed');
  });

  it('imports the good rows when asked to skip the bad ones: contacts, merged fields, addresses, consent, subscriptions', async () => {
    const before = await counts();
    const report = await runImport(s, actor, request(CSV, { dryRun: false, skipBadRows: true }));
    expect(report.status).toBe('committed');
    expect(report.rows).toEqual({ total: 14, valid: 5, bad: 9, new: 4, merged: 1, imported: 5, skipped: 9 });
    const after = await counts();
    expect(after.contacts - before.contacts).toBe(4);
    expect(after.addresses - before.addresses).toBe(4 * 2 + 1); // both media for new numbers; the existing contact gains WhatsApp
    expect(after.consents - before.consents).toBe(5);
    expect(after.subscriptions - before.subscriptions).toBe(5);

    const k = s.db.knex;
    const byNumber = async (n: string) => k('contact_addresses as a').join('contacts as c', 'c.id', 'a.contact_id').where('a.address', n).where('a.channel', 'sms').first('c.*');
    const ana = await byNumber('+51987650001');
    expect(ana).toMatchObject({ name: 'Ana', language: 'es', status: 'active' });
    expect(JSON.parse(typeof ana.fields === 'string' ? ana.fields : JSON.stringify(ana.fields))).toEqual({ region: 'Lima', age_group: '18-24', household_size: 4, arrived: '2024-01-10' });
    expect((await byNumber('+51987650002')).language).toBe('es-PE');
    expect((await byNumber('+51987650007')).name).toBe('Fay\nSecond line');

    const old = await byNumber('+51987650010');
    expect(old.name).toBe('Old Name Fixed');
    expect(old.language).toBe('en'); // empty cell: kept
    expect(JSON.parse(typeof old.fields === 'string' ? old.fields : JSON.stringify(old.fields))).toEqual({ region: 'Lima', household_size: 5, age_group: '60+' });
    expect(await k('contact_addresses').where({ contact_id: old.id }).orderBy('channel').pluck('channel')).toEqual(['sms', 'whatsapp']);

    const consent = await k('consents').where({ contact_id: ana.id }).first();
    expect(consent).toMatchObject({ purpose: 'updates', action: 'grant', legal_basis: 'consent', method: 'import', channel: 'import', evidence_type: 'import' });
    expect(consent.evidence_ref).toBe(`import:${report.importId} people.csv by staff user ${actor.id}`);
    expect(toInt(consent.staff_user_id)).toBe(actor.id);
    expect(toDate(consent.at).toISOString()).toBe(NOW.toISOString());
    const state = await k('consent_state').where({ contact_id: ana.id, purpose: 'updates' }).first();
    expect(toBool(state.granted)).toBe(true);
    expect(toInt(state.consent_id)).toBe(toInt(consent.id));
    const sub = await k('subscriptions').where({ contact_id: ana.id, list_id: listId }).first();
    expect(sub.status).toBe('active');
    expect(toInt(sub.consent_id)).toBe(toInt(consent.id));

    const rec = await k('imports').where('id', report.importId).first();
    expect(rec).toMatchObject({ status: 'committed', legal_basis: 'consent', evidence: EVIDENCE });
    expect([toInt(rec.rows_total), toInt(rec.rows_imported), toInt(rec.rows_skipped), toInt(rec.rows_new), toInt(rec.rows_merged)]).toEqual([14, 5, 9, 4, 1]);
    expect((await listAudit(s.db, { entityType: 'import', entityId: String(report.importId) }))[0].action).toBe('contacts.import');
  });

  it('merges a second import of the same people instead of duplicating them', async () => {
    const before = await counts();
    const csv = 'Telefono,Nombre,Edad,Hogar,Llegada\n+51987650001,Ana María,25-39,,\n';
    const report = await runImport(s, actor, request(csv, { dryRun: false }));
    expect(report.rows).toMatchObject({ valid: 1, new: 0, merged: 1, imported: 1 });
    const after = await counts();
    expect(after.contacts).toBe(before.contacts);
    expect(after.addresses).toBe(before.addresses);
    expect(after.subscriptions).toBe(before.subscriptions);
    expect(after.consents).toBe(before.consents + 1); // the ledger only grows
    expect(after.state).toBe(before.state);
  });

  it('accepts a tombstoned number only with consent dated after the erasure', async () => {
    const csv = 'Telefono,Nombre,Consentimiento\n987650013,Back,2026-01-10\n';
    const early = await runImport(s, actor, request(csv, { mapping: { phone: 'Telefono', consent_date: 'Consentimiento' } }));
    expect(early.errors.map((e) => e.row)).toEqual([2]);
    const later = await runImport(s, actor, request(csv.replace('2026-01-10', '2026-02-20'), { mapping: { phone: 'Telefono', consent_date: 'Consentimiento' }, dryRun: false }));
    expect(later.status).toBe('committed');
    const c = await s.db.knex('consents as c').join('contact_addresses as a', 'a.contact_id', 'c.contact_id').where('a.address', '+51987650013').first('c.at');
    expect(toDate(c.at).toISOString()).toBe('2026-02-20T00:00:00.000Z');
  });
});

describe('a generated file with 1% bad rows (the benchmark, smaller)', () => {
  it('lists exactly the bad rows, refuses a plain commit and imports the rest when asked', async () => {
    const file = generateCsv(2_000);
    // Batches of 300 rows: the commit writes the first batches before it meets a bad row, and must roll them back.
    const req = request(file.csv, { mapping: IMPORT_MAPPING, fileName: 'generated.csv', batchSize: 300 });
    const dry = await runImport(s, actor, req);
    expect(dry.rows.bad).toBe(20);
    expect(new Map(dry.errors.map((e) => [e.row, e.column]))).toEqual(file.bad);
    const before = await counts();
    const refused = await runImport(s, actor, { ...req, dryRun: false });
    expect(refused.status).toBe('failed');
    expect(await counts()).toEqual(before);
    const done = await runImport(s, actor, { ...req, dryRun: false, skipBadRows: true });
    expect(done.rows).toMatchObject({ total: 2_000, valid: 1_980, bad: 20, imported: 1_980, skipped: 20 });
    expect((await counts()).subscriptions - before.subscriptions).toBe(1_980);
  });

  it('rolls back batches already written when a bad row comes late in the file', async () => {
    const lines = ['Telefono,Nombre'];
    for (let i = 0; i < 1_000; i++) lines.push(`+51 95${String(1_000_000 + i)},P${i}`);
    lines.push('+51 1,Late and wrong');
    const before = await counts();
    const r = await runImport(s, actor, request(lines.join('\n'), { mapping: { phone: 'Telefono', name: 'Nombre' }, dryRun: false, batchSize: 100 }));
    expect(r.status).toBe('failed');
    expect(r.errors.map((e) => e.row)).toEqual([1_002]);
    expect(await counts()).toEqual(before);
  });
});

describe('big files: read and checked in a worker thread', () => {
  it('reports and imports exactly as when checked in the importing thread, and the worker serves the next import too', async () => {
    const file = generateCsv(1_500);
    const req = request(file.csv, { mapping: IMPORT_MAPPING, fileName: 'worker.csv', batchSize: 200 });
    const here = await runImport(s, actor, { ...req, worker: false });
    const before0 = importWorkerStats();
    const there = await runImport(s, actor, { ...req, worker: true });
    expect(there.rows).toEqual(here.rows);
    expect(there.errors).toEqual(here.errors);
    expect(new Map(there.errors.map((e) => [e.row, e.column]))).toEqual(file.bad);

    const before = await counts();
    const refused = await runImport(s, actor, { ...req, worker: true, dryRun: false });
    expect(refused.status).toBe('failed');
    expect(await counts()).toEqual(before);
    const done = await runImport(s, actor, { ...req, worker: true, dryRun: false, skipBadRows: true });
    expect(done.rows).toMatchObject({ total: 1_500, bad: 15, imported: 1_485, skipped: 15 });
    expect((await counts()).consents - before.consents).toBe(1_485);
    // One worker read the file for the three imports.
    const after = importWorkerStats();
    expect([after.started - before0.started, after.jobs - before0.jobs]).toEqual([1, 3]);
  });

  it('a big file: its dry run checks in this thread and readies the worker that its commit then uses', async () => {
    const file = generateCsv(24_000);
    expect(file.csv.length).toBeGreaterThanOrEqual(WORKER_MIN_BYTES);
    const req = request(file.csv, { mapping: IMPORT_MAPPING, fileName: 'big.csv' });
    const before = importWorkerStats();
    const dry = await runImport(s, actor, req);
    expect(dry.rows.bad).toBe(file.bad.size);
    expect(importWorkerStats().jobs).toBe(before.jobs); // the dry run read the file itself
    const done = await runImport(s, actor, { ...req, dryRun: false, skipBadRows: true });
    expect(done.rows).toMatchObject({ total: 24_000, bad: file.bad.size, imported: 24_000 - file.bad.size });
    const after = importWorkerStats();
    // The commit's file went to a worker, the one idle from before or the one the dry run started: never a second.
    expect(after.jobs - before.jobs).toBe(1);
    expect(after.started - before.started).toBeLessThanOrEqual(1);
  });

  it('names what is wrong with a file the worker cannot read, and writes nothing', async () => {
    const before = await counts();
    const broken = 'Telefono,Nombre\n+51 987 650 101,"Ana\n+51 987 650 102,Bea\n';
    const e = await runImport(s, actor, request(broken, { mapping: { phone: 'Telefono', name: 'Nombre' }, worker: true, dryRun: false })).catch((x) => x);
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).details?.file).toMatch(/CSV file cannot be read/);
    expect(await counts()).toEqual(before);
  });
});

describe('XLSX', () => {
  it('reads the first worksheet: numeric phone cells, dates, rich text, row numbers as in the sheet', async () => {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('Personas');
    ws.addRow([]); // a blank first row: the header is on row 2
    ws.addRow(['Telefono', 'Nombre', 'Llegada', 'Edad']);
    ws.addRow([51987650020, { richText: [{ text: 'Ro' }, { text: 'sa' }] }, new Date(Date.UTC(2025, 4, 3)), '18-24']);
    ws.addRow(['not a number', 'X', null, null]);
    ws.addRow(['+51 987 650 021', 'Saúl', '2025-13-01', '60+']);
    const bytes = new Uint8Array(await wb.xlsx.writeBuffer());
    const mapping = { phone: 'Telefono', name: 'Nombre', arrived: 'Llegada', age_group: 'Edad' };
    const dry = await runImport(s, actor, request(bytes, { fileName: 'people.xlsx', mapping }));
    expect(dry.format).toBe('xlsx');
    expect(dry.errors.map((e) => [e.row, e.column])).toEqual([
      [4, 'Telefono'],
      [5, 'Llegada'],
    ]);
    const done = await runImport(s, actor, request(bytes, { fileName: 'people.xlsx', mapping, dryRun: false, skipBadRows: true }));
    expect(done.rows).toMatchObject({ imported: 1, skipped: 2 });
    const rosa = await s.db.knex('contact_addresses as a').join('contacts as c', 'c.id', 'a.contact_id').where('a.address', '+51987650020').first('c.name', 'c.fields');
    expect(rosa.name).toBe('Rosa');
    expect(JSON.parse(typeof rosa.fields === 'string' ? rosa.fields : JSON.stringify(rosa.fields))).toEqual({ arrived: '2025-05-03', age_group: '18-24' });
  });
});


describe('phone numbers', () => {
  it('gives the same answer with the per-prefix cache as libphonenumber row by row', () => {
    const fast = phoneNormaliser('PE');
    const slow = (text: string) => {
      const p = normalisePhone(text, 'PE');
      if (!p.ok && /^\d{10,15}$/.test(text)) {
        const intl = normalisePhone('+' + text, 'PE');
        if (intl.ok) return intl;
      }
      return p;
    };
    // Deterministic pseudo-random digits.
    let seed = 42;
    const digit = () => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % 10);
    const digits = (n: number) => Array.from({ length: n }, digit).join('');
    const inputs: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const shape = i % 10;
      if (shape === 0) inputs.push(`9${digits(8)}`); // Peruvian mobile, national
      else if (shape === 1) inputs.push(`+51 9${digits(2)} ${digits(3)} ${digits(3)}`);
      else if (shape === 2) inputs.push(`0051${digits(9)}`); // any digits: valid or not
      else if (shape === 3) inputs.push(`(01) ${digits(3)}-${digits(4)}`); // Lima landline, and lookalikes
      else if (shape === 4) inputs.push(`+1 ${digits(3)} ${digits(3)} ${digits(4)}`); // NANP: validity depends on area code and exchange
      else if (shape === 5) inputs.push(`+44 7${digits(9)}`);
      else if (shape === 6) inputs.push(`+58 4${digits(9)}`); // Venezuela
      else if (shape === 7) inputs.push(`51${digits(9)}`); // a spreadsheet without the +
      else if (shape === 8) inputs.push(`+${digits(11)}`); // anything
      else inputs.push(`9${digits(7)}`); // too short
    }
    // Numbers in the same blocks of 10,000 (what files hold), so that the cache is exercised.
    for (let i = 0; i < 500; i++) inputs.push(`+51 987 65${String(i).padStart(4, '0')}`, `+1 212 555 ${String(i).padStart(4, '0')}`, `+44 20 7946 ${String(i).padStart(4, '0')}`);
    let same = 0;
    for (const x of inputs) {
      expect(fast(x), x).toEqual(slow(x));
      same++;
    }
    expect(same).toBe(inputs.length);
  });
});

describe('bulk inserts', () => {
  it('write reserved ids whether they are consecutive or not, values that differ per row and values shared by the batch', async () => {
    const now = new Date('2026-03-02T10:00:00Z');
    const max = toInt((await s.db.knex('contacts').max({ m: 'id' }))[0].m);
    const ids = [max + 10, max + 11, max + 12, max + 20, max + 23];
    const knex = s.db.knex;
    await knex.transaction(async (trx) => {
      await bulkInsert(
        trx,
        'contacts',
        [
          { name: 'id', type: 'integer', from: 'ids', ids: ids.slice(0, 3) },
          { name: 'name', type: 'text', from: 'row' },
          { name: 'status', type: 'text', from: 'same', value: 'active' },
          { name: 'created_at', type: 'timestamptz', from: 'same', value: now },
          { name: 'updated_at', type: 'timestamptz', from: 'same', value: now },
        ],
        [['Consecutive 1'], ['Consecutive 2'], ['Consecutive 3']],
      );
      await bulkInsert(
        trx,
        'contacts',
        [
          { name: 'name', type: 'text', from: 'row' },
          { name: 'id', type: 'integer', from: 'ids', ids: ids.slice(3) },
          { name: 'language', type: 'text', from: 'row' },
          { name: 'status', type: 'text', from: 'same', value: 'active' },
          { name: 'created_at', type: 'timestamptz', from: 'same', value: now },
          { name: 'updated_at', type: 'timestamptz', from: 'same', value: now },
        ],
        [['Gap 1', 'es'], ['Gap 2', 'pt']],
      );
    });
    const rows = await knex('contacts').whereIn('id', ids).orderBy('id').select('id', 'name', 'language', 'status', 'created_at');
    expect(rows.map((r) => [toInt(r.id), r.name, r.language ?? null, r.status, toDate(r.created_at).toISOString()])).toEqual([
      [ids[0], 'Consecutive 1', null, 'active', now.toISOString()],
      [ids[1], 'Consecutive 2', null, 'active', now.toISOString()],
      [ids[2], 'Consecutive 3', null, 'active', now.toISOString()],
      [ids[3], 'Gap 1', 'es', 'active', now.toISOString()],
      [ids[4], 'Gap 2', 'pt', 'active', now.toISOString()],
    ]);
    await knex('contacts').whereIn('id', ids).delete();
  });
});
