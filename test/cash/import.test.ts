/**
 * Beneficiary imports and what follows them: the dry run reports every bad row (row, column,
 * reason) and every possible duplicate (within the file, against other lists) and writes nothing;
 * a commit is all or nothing unless told to skip bad rows; it records the cash_programme consent
 * of numbers never asked (not of people who withdrew it). Duplicates block enrolment until staff
 * keep one, keep both or exclude both. Exports carry only the fields of their profile.
 */
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContact } from '../../src/contacts/contacts.js';
import { recordConsent } from '../../src/contacts/consent.js';
import { toInt } from '../../src/db/values.js';
import { readJsonArray } from '../../src/cash/lists.js';
import { SYSTEM } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { createToken } from '../../src/staff/service.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const tokens = {} as Record<Role, string>;
const api = (role: Role, method: string, path: string, json?: unknown, headers: Record<string, string> = {}) =>
  new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[role]}`, ...headers }, json });
const ok = async (role: Role, method: string, path: string, json?: unknown) => {
  const res = await api(role, method, path, json);
  expect(res.status, `${method} ${path}: ${res.text_}`).toBeLessThan(300);
  return JSON.parse(res.text_) as { data: any } & Record<string, any>;
};
const count = async (table: string, where: Record<string, unknown> = {}) => toInt((await t.db.knex(table).where(where).count({ n: '*' }))[0].n);

const EVIDENCE = 'Registro en el punto de atencion de Tumbes: se explico el programa y aceptaron ser contactados por SMS.';

let otherList = 0;
let list = 0;
let withdrawnContact = 0;

const FILE = [
  'ID hogar;Nombre;Celular;Departamento;Provincia;Distrito;Miembros;Vulnerabilidad;Sexo;Edad',
  'HH-001;Rosa Quispe;987 200 001;Tumbes;Tumbes;Corrales;4;discapacidad; F;34', // 2: fine
  'HH-002;Luis Soto;+51987200002;Tumbes;Zarumilla;Aguas Verdes;3;"madre sola, embarazo";M;41', // 3
  'HH-003;Ana Ruiz;12345;Tumbes;Tumbes;;2;;F;29', // 4: bad number
  ';Sin Datos;;Tumbes;;;1;;;', // 5: neither household id nor phone
  'HH-005;Pedro Lima;987200005;Tumbes;;;0;;X;200', // 6: size 0, age 200 (X is a gender: other)
  'HH-006;Marta Diaz;987200001;Tumbes;;;5;;mujer;52', // 7: same number as row 2
  'hh 002;Luis Soto B;987200007;Tumbes;;;3;;hombre;', // 8: same household as row 3
  'HH-900;Carmen Vela;987200900;Piura;;;6;;F;61', // 9: already in the other list (same household id and number)
  'HH-010;Jorge Paz;987200010;Tumbes;;;2;;masculino;19', // 10: fine; the contact withdrew cash consent
  'HH-011;Lucia Rojas;987200011;Tumbes;;;3;;otro;70', // 11: fine
].join('\n');

beforeAll(async () => {
  t = await startTestApp();
  for (const role of ['cash', 'viewer'] as Role[]) {
    await makeUser(t.db, role);
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `${role} token`, role })).secret;
  }
  otherList = (await ok('cash', 'POST', '/cash/lists', { name: 'Piura octubre' })).data.id;
  const first = await ok('cash', 'POST', `/cash/lists/${otherList}/import`, { fileName: 'piura.csv', content: 'household_id,name,phone\nHH-900,Carmen Vela,987200900\n', dryRun: false, evidence: EVIDENCE });
  expect(first.data).toMatchObject({ status: 'committed', rows: { written: 1 } });
  list = (await ok('cash', 'POST', '/cash/lists', { name: 'Tumbes noviembre' })).data.id;
  // Someone who told the programme they no longer want to be contacted about cash.
  const c = await createContact(t.db.knex, 'PE', { addresses: [{ medium: 'sms', address: '+51987200010' }] });
  withdrawnContact = c.id;
  await recordConsent(t.db.knex, { contactId: c.id, purpose: 'cash_programme', action: 'withdraw', method: 'operator', staffUserId: 1, legalBasis: 'consent' });
});
afterAll(() => t?.close());

describe('beneficiary import', () => {
  it('a dry run lists every bad row and every possible duplicate, and writes nothing', async () => {
    const before = { beneficiaries: await count('cash_beneficiaries'), contacts: await count('contacts'), consents: await count('consents') };
    const r = (await ok('cash', 'POST', `/cash/lists/${list}/import`, { fileName: 'tumbes.csv', content: FILE, dryRun: true, evidence: EVIDENCE })).data;
    expect(r).toMatchObject({ status: 'dry_run', format: 'csv', rows: { total: 10, valid: 7, bad: 3, duplicate: 3, written: 0 } });
    expect(r.mapping).toEqual({ household_id: 'ID hogar', name: 'Nombre', phone: 'Celular', admin1: 'Departamento', admin2: 'Provincia', admin3: 'Distrito', household_size: 'Miembros', vulnerability: 'Vulnerabilidad', gender: 'Sexo', age: 'Edad' });
    expect(r.errors).toEqual([
      { row: 4, column: 'Celular', value: '12345', reason: expect.stringMatching(/^invalid phone number: /) },
      { row: 5, column: 'ID hogar', value: null, reason: 'the row has neither a household id nor a phone number' },
      { row: 6, column: 'Miembros', value: '0', reason: 'the household size must be a whole number from 1 to 50' },
      { row: 6, column: 'Edad', value: '200', reason: 'the age must be a whole number of years from 0 to 120' },
    ]);
    expect(r.duplicates).toEqual([
      { row: 7, match: 'phone', scope: 'file', otherRow: 2 },
      { row: 8, match: 'household_id', scope: 'file', otherRow: 3 },
      // Same household id and same number as one record: one pair.
      { row: 9, match: 'household_id', scope: 'existing', other: expect.objectContaining({ listId: otherList, listName: 'Piura octubre', status: 'candidate' }) },
    ]);
    expect({ beneficiaries: await count('cash_beneficiaries'), contacts: await count('contacts'), consents: await count('consents') }).toEqual(before);
    expect(await count('cash_imports', { list_id: list, status: 'dry_run' })).toBe(1);
  });

  it('a commit with bad rows writes nothing unless told to skip them', async () => {
    const before = await count('cash_beneficiaries');
    const refused = (await ok('cash', 'POST', `/cash/lists/${list}/import`, { fileName: 'tumbes.csv', content: FILE, dryRun: false, evidence: EVIDENCE })).data;
    expect(refused).toMatchObject({ status: 'failed', rows: { bad: 3, written: 0 } });
    expect(await count('cash_beneficiaries')).toBe(before);

    const done = (await ok('cash', 'POST', `/cash/lists/${list}/import`, { fileName: 'tumbes.csv', content: FILE, dryRun: false, skipBadRows: true, enrol: true, evidence: EVIDENCE })).data;
    expect(done).toMatchObject({ status: 'committed', rows: { valid: 7, written: 7, enrolled: 2, skipped: 3 } });
    const rows = await t.db.knex('cash_beneficiaries').where('list_id', list).orderBy('import_row');
    // Rows in a duplicate pair (either side) stay candidates; the others are enrolled as asked.
    expect(rows.map((b: any) => [toInt(b.import_row), b.household_id, b.phone, b.status])).toEqual([
      [2, 'HH-001', '+51987200001', 'candidate'],
      [3, 'HH-002', '+51987200002', 'candidate'],
      [7, 'HH-006', '+51987200001', 'candidate'],
      [8, 'hh 002', '+51987200007', 'candidate'],
      [9, 'HH-900', '+51987200900', 'candidate'],
      [10, 'HH-010', '+51987200010', 'enrolled'],
      [11, 'HH-011', '+51987200011', 'enrolled'],
    ]);
    const hh2 = rows.find((b: any) => b.household_id === 'HH-002');
    expect(hh2).toMatchObject({ name: 'Luis Soto', admin1: 'Tumbes', admin2: 'Zarumilla', admin3: 'Aguas Verdes', gender: 'male', age_group: '25-59' });
    expect(readJsonArray(hh2.vulnerability)).toEqual(['madre sola', 'embarazo']);
    expect(await count('cash_duplicates', { list_id: list, status: 'open' })).toBe(3);
    // Staff find a household by part of the name, its household id written any way, or the number.
    const find = async (q: string) => (await ok('cash', 'GET', `/cash/lists/${list}/beneficiaries?q=${encodeURIComponent(q)}`)).data.map((b: any) => b.householdId).sort();
    expect(await find('soto')).toEqual(['HH-002', 'hh 002']);
    expect(await find('hh-006')).toEqual(['HH-006']);
    expect(await find('987200011')).toEqual(['HH-011']);
    expect(await find('100%_')).toEqual([]);
    // Consent: recorded for the numbers never asked, with the import as evidence; the withdrawal stands.
    const state = await t.db.knex('consent_state').where({ contact_id: withdrawnContact, purpose: 'cash_programme' }).first();
    expect(Boolean(state.granted)).toBe(false);
    const c11 = await t.db.knex('contact_addresses').where({ address: '+51987200011' }).first('contact_id');
    const grant = await t.db.knex('consents').where({ contact_id: c11.contact_id, purpose: 'cash_programme' }).first();
    expect(grant).toMatchObject({ action: 'grant', method: 'import', evidence_type: 'import' });
    expect(grant.evidence_ref).toContain('tumbes.csv');
    const audited = await t.db.knex('audit_events').where({ action: 'cash.import' }).orderBy('id', 'desc').first('detail');
    expect(JSON.parse(audited.detail)).toMatchObject({ written: 7, bad: 3 });
    expect(audited.detail).not.toContain('987');
  });

  it('refuses a mapping that does not fit the file, naming it', async () => {
    const r = await api('cash', 'POST', `/cash/lists/${list}/import`, { fileName: 'x.csv', content: 'A,B\n1,2\n', mapping: { phone: 'Telefono' }, dryRun: true, evidence: EVIDENCE });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text_).error.details).toEqual({ 'mapping.phone': 'the file has no column "Telefono" (the columns are A, B)' });
    const none = await api('cash', 'POST', `/cash/lists/${list}/import`, { fileName: 'x.csv', content: 'A,B\n1,2\n', dryRun: true, evidence: EVIDENCE });
    expect(JSON.parse(none.text_).error.details).toHaveProperty('mapping.household_id');
  });

  it('reads an XLSX file sent as it is', async () => {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('Hogares');
    ws.addRow(['Household ID', 'Name', 'Phone', 'Admin1', 'Household size', 'Vulnerability']);
    ws.addRow(['HX-1', 'Elena Torres', 51987200101, 'Lima', 5, 'elderly; disability']);
    ws.addRow(['HX-2', 'Raul Gil', '987200102', 'Lima', 'many', '']);
    const bytes = Buffer.from(await wb.xlsx.writeBuffer());
    const l = (await ok('cash', 'POST', '/cash/lists', { name: 'Lima' })).data.id;
    const q = new URLSearchParams({ fileName: 'lima.xlsx', dryRun: 'true', evidence: EVIDENCE });
    const res = await fetch(`${t.url}/api/v1/cash/lists/${l}/import/file?${q}`, {
      method: 'POST', headers: { authorization: `Bearer ${tokens.cash}`, 'content-type': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' }, body: bytes,
    });
    const r = ((await res.json()) as { data: any }).data;
    expect(r).toMatchObject({ status: 'dry_run', format: 'xlsx', rows: { total: 2, valid: 1, bad: 1 } });
    expect(r.errors).toEqual([{ row: 3, column: 'Household size', value: 'many', reason: 'the household size must be a whole number from 1 to 50' }]);
  });
});

describe('duplicates and enrolment', () => {
  it('a beneficiary with an open duplicate cannot be enrolled until it is resolved', async () => {
    const dups = (await ok('cash', 'GET', `/cash/lists/${list}/duplicates?status=open`)).data as any[];
    expect(dups).toHaveLength(3);
    const byPhone = dups.find((d) => d.match === 'phone' && d.scope === 'file');
    expect(byPhone.beneficiary).toMatchObject({ householdId: 'HH-006', phone: '+51987200001' });
    const r = await ok('cash', 'POST', `/cash/lists/${list}/status`, { ids: [byPhone.beneficiary.id], status: 'enrolled' });
    expect(r.data.changed).toBe(0);
    expect(r.data.refused[0].reason).toMatch(/^open duplicate #\d+: resolve it first$/);

    // Keep both: the same phone, two households (a shared phone).
    await ok('cash', 'POST', `/cash/duplicates/${byPhone.id}/resolve`, { action: 'keep_both' });
    expect((await ok('cash', 'POST', `/cash/lists/${list}/status`, { ids: [byPhone.beneficiary.id], status: 'enrolled' })).data).toEqual({ changed: 1, refused: [] });

    // Keep one: the other is excluded with the reason.
    const byHousehold = dups.find((d) => d.match === 'household_id' && d.scope === 'file');
    const kept = await ok('cash', 'POST', `/cash/duplicates/${byHousehold.id}/resolve`, { action: 'keep_one', keep: byHousehold.other.id });
    expect(kept.data).toMatchObject({ status: 'kept_one', keptId: byHousehold.other.id });
    expect((await ok('cash', 'GET', `/cash/beneficiaries/${byHousehold.beneficiary.id}`)).data).toMatchObject({ status: 'excluded', excludedReason: `duplicate of #${byHousehold.other.id}` });
    const again = await api('cash', 'POST', `/cash/duplicates/${byHousehold.id}/resolve`, { action: 'keep_both' });
    expect(again.status).toBe(409);
    const wrong = await api('cash', 'POST', `/cash/duplicates/${dups.find((d) => d.scope === 'existing').id}/resolve`, { action: 'keep_one', keep: 999999 });
    expect(wrong.status).toBe(400);

    // Exclude both: the record already in another list, and this one.
    const existing = dups.find((d) => d.scope === 'existing');
    await ok('cash', 'POST', `/cash/duplicates/${existing.id}/resolve`, { action: 'exclude_both', reason: 'registered twice, checking identity' });
    const other = (await ok('cash', 'GET', `/cash/beneficiaries/${existing.other.id}`)).data;
    expect(other).toMatchObject({ status: 'excluded', excludedReason: 'registered twice, checking identity', listId: otherList });
    expect((await ok('cash', 'GET', `/cash/beneficiaries/${existing.beneficiary.id}`)).data.status).toBe('excluded');
    expect((await ok('cash', 'GET', `/cash/lists/${list}/duplicates?status=open`)).data).toHaveLength(0);
  });
});

describe('exports', () => {
  it('the payment provider gets household id, name, phone and amount of the enrolled only, and no vulnerability data', async () => {
    const d = (await ok('cash', 'POST', '/cash/distributions', { listId: list, name: 'Ronda 1', date: '2026-11-02', amount: 250.5, currency: 'PEN', modality: 'cash', provider: 'Agente' })).data;
    const res = await api('cash', 'GET', `/cash/lists/${list}/export?profile=payment_provider&distributionId=${d.id}&format=csv`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/attachment; filename="beneficiaries-\d+-payment_provider-d\d+-/);
    const lines = res.text_.replace(/^\ufeff/, '').trim().split('\n');
    expect(lines[0]).toBe('household_id,name,phone,amount,currency');
    expect(lines.slice(1).sort()).toEqual(['HH-006,Marta Diaz,+51987200001,250.5,PEN', 'HH-010,Jorge Paz,+51987200010,250.5,PEN', 'HH-011,Lucia Rojas,+51987200011,250.5,PEN']);
    expect(res.text_).not.toMatch(/madre|embarazo|discapacidad/);
    const audited = await t.db.knex('audit_events').where({ action: 'cash.export' }).orderBy('id', 'desc').first('detail');
    expect(JSON.parse(audited.detail)).toMatchObject({ profile: 'payment_provider', rows: 3, fields: ['household_id', 'name', 'phone', 'amount', 'currency'] });

    const needs = await api('cash', 'GET', `/cash/lists/${list}/export?profile=payment_provider`);
    expect(needs.status).toBe(400);
    const field = await api('cash', 'GET', `/cash/lists/${list}/export?profile=field_verification&format=xlsx`);
    expect(field.headers.get('content-type')).toContain('spreadsheetml');
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(Buffer.from(await (await fetch(`${t.url}/api/v1/cash/lists/${list}/export?profile=field_verification&format=xlsx`, { headers: { authorization: `Bearer ${tokens.cash}` } })).arrayBuffer()) as never);
    const header = (wb.worksheets[0].getRow(1).values as unknown[]).slice(1);
    expect(header).toEqual(['household_id', 'name', 'admin1', 'admin2', 'admin3', 'household_size']);
    expect((await api('viewer', 'GET', `/cash/lists/${list}/export?profile=cash_team`)).status).toBe(403);
  });
});
