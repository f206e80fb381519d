/** Imports over HTTP (raw CSV/XLSX bodies and JSON), on the console (pasted CSV, plain form) and from the CLI. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ExcelJS from 'exceljs';
import { startTestApp, Client, makeUser, type TestApp } from '../helpers/app.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';
import { ROOT } from '../../src/paths.js';

let t: TestApp;
let dir: string;
const tokens: Record<string, string> = {};
const EVIDENCE = 'Registered at the Lima help desk, told about updates and how to stop.';
const CSV = 'Telefono,Nombre,Region\n+51987660001,Ana,Lima\n12,Bad,Lima\n+51987660002,Bruno,Tumbes\n';

async function post(path: string, body: string | Uint8Array, type: string, role = 'admin') {
  const res = await fetch(`${t.url}/api/v1${path}`, { method: 'POST', headers: { authorization: `Bearer ${tokens[role]}`, 'content-type': type }, body });
  return { status: res.status, body: JSON.parse(await res.text()) };
}

const contactsCount = async () => toInt((await t.db.knex('contacts').count({ n: '*' }))[0].n);

beforeAll(async () => {
  t = await startTestApp({ DEFAULT_COUNTRY: 'PE' });
  for (const role of ['admin', 'broadcaster'] as const) {
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `t-${role}`, role })).secret;
    await makeUser(t.db, role);
  }
  const now = new Date();
  await t.db.knex('contact_fields').insert({ key: 'region', label: 'Region', type: 'choice', choices: JSON.stringify(['Lima', 'Tumbes']), created_at: now });
  await t.db.knex('lists').insert({ key: 'news', name: 'News', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now });
  dir = mkdtempSync(join(tmpdir(), 'ayni-import-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await t?.close();
});

describe('POST /api/v1/imports', () => {
  const query = (extra: Record<string, string> = {}) =>
    '?' + new URLSearchParams({ list: 'news', file_name: 'people.csv', basis: 'consent', evidence: EVIDENCE, map: 'phone=Telefono,name=Nombre', ...extra }).toString();

  it('takes a CSV body: a dry run reports the bad rows and changes nothing', async () => {
    const before = await contactsCount();
    const r = await post('/imports' + query({ dry_run: 'true' }), CSV, 'text/csv');
    expect(r.status).toBe(200);
    expect(r.body.data.status).toBe('dry_run');
    expect(r.body.data.errors).toEqual([{ row: 3, column: 'Telefono', value: '12', reason: expect.stringMatching(/^invalid phone number/) }]);
    expect(r.body.data.mapping).toEqual({ phone: 'Telefono', name: 'Nombre', region: 'Region' });
    expect(await contactsCount()).toBe(before);
  });

  it('refuses a commit with bad rows (422, report included) and imports the rest when asked', async () => {
    const refused = await post('/imports' + query(), CSV, 'text/csv');
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('import_rejected');
    expect(refused.body.error.details.report.rows).toMatchObject({ total: 3, bad: 1, imported: 0 });
    const before = await contactsCount();
    const done = await post('/imports' + query({ skip_bad_rows: 'true', channels: 'sms' }), CSV, 'text/csv');
    expect(done.status).toBe(200);
    expect(done.body.data).toMatchObject({ status: 'committed', rows: { imported: 2, skipped: 1 } });
    expect(await contactsCount()).toBe(before + 2);
    const channels = await t.db.knex('contact_addresses').where('address', '+51987660001').pluck('channel');
    expect(channels).toEqual(['sms']);

    const list = (await fetch(`${t.url}/api/v1/imports`, { headers: { authorization: `Bearer ${tokens.admin}` } }).then((x) => x.json())) as { data: Record<string, unknown>[] };
    expect(list.data[0]).toMatchObject({ id: done.body.data.importId, status: 'committed', listKey: 'news', rowsImported: 2, rowsBad: 1 });
    const one = (await fetch(`${t.url}/api/v1/imports/${done.body.data.importId}`, { headers: { authorization: `Bearer ${tokens.admin}` } }).then((x) => x.json())) as { data: { evidence: string } };
    expect(one.data.evidence).toBe(EVIDENCE);
  });

  it('takes an XLSX body, and JSON with base64 or text', async () => {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('s');
    ws.addRow(['Telefono', 'Nombre']);
    ws.addRow([51987660003, 'Carla']);
    const bytes = new Uint8Array(await wb.xlsx.writeBuffer());
    const raw = await post('/imports' + query({ file_name: 'people.xlsx', dry_run: '1' }), bytes, 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    expect(raw.status).toBe(200);
    expect(raw.body.data).toMatchObject({ format: 'xlsx', rows: { total: 1, valid: 1, new: 1 } });

    const json = await post('/imports', JSON.stringify({ list: 'news', file_name: 'people.xlsx', content_base64: Buffer.from(bytes).toString('base64'), basis: 'consent', evidence: EVIDENCE, mapping: { phone: 'Telefono' }, dry_run: false }), 'application/json');
    expect(json.status).toBe(200);
    expect(json.body.data).toMatchObject({ status: 'committed', rows: { imported: 1 } });
    const text = await post('/imports', JSON.stringify({ list: 'news', content: 'phone\n+51987660004\n', basis: 'consent', evidence: EVIDENCE, dry_run: true }), 'application/json');
    expect(text.body.data.rows).toMatchObject({ total: 1, valid: 1 });
  });

  it('says what is wrong with a request that cannot start', async () => {
    const noEvidence = await post('/imports', JSON.stringify({ list: 'news', content: CSV, dry_run: true, evidence: 'short' }), 'application/json');
    expect(noEvidence.status).toBe(400);
    expect(noEvidence.body.error.details).toHaveProperty('evidence');
    const both = await post('/imports', JSON.stringify({ list: 'news', content: CSV, content_base64: 'eA==', evidence: EVIDENCE }), 'application/json');
    expect(both.body.error.details).toHaveProperty('body.content');
    const badColumn = await post('/imports' + query({ map: 'phone=Phone' }), CSV, 'text/csv');
    expect(badColumn.status).toBe(400);
    expect(badColumn.body.error.details['mapping.phone']).toMatch(/the file has no column "Phone"/);
    const wrongType = await post('/imports' + query(), '<xml/>', 'application/xml');
    expect(wrongType.status).toBe(415);
    const noList = await post('/imports' + query({ list: 'nope' }), CSV, 'text/csv');
    expect(noList.body.error.details.list).toMatch(/there is no list "nope"/);
  });

  it('needs contacts.write', async () => {
    expect((await post('/imports' + query({ dry_run: 'true' }), CSV, 'text/csv', 'broadcaster')).status).toBe(403);
  });
});

describe('imports console', () => {
  it('checks pasted CSV, shows the bad rows, then imports with a plain form', async () => {
    const c = new Client(t.url);
    await c.login('admin@example.org');
    const page = await c.get('/imports');
    expect(page.status).toBe(200);
    for (const id of ['import-list', 'import-file', 'import-content', 'import-mapping', 'import-basis', 'import-evidence', 'import-skip']) expect(page.text_).toContain(`<label for="${id}">`);
    const form = { list: 'news', basis: 'consent', evidence: EVIDENCE, mapping: 'phone=Telefono, name=Nombre', file_name: 'pasted.csv', content: 'Telefono,Nombre,Region\n+51987660011,Dora,Lima\n+51987660012,Eli,Cusco\n', sms: 'true' };
    const dry = await c.submit('/imports', '/imports', { ...form, action: 'dry_run' });
    expect(dry.status).toBe(200);
    expect(dry.text_).toContain('Dry run: nothing was changed');
    expect(dry.text_).toMatch(/<tr><td>3<\/td><td>Region<\/td><td><code>Cusco<\/code><\/td><td>unknown choice value for Region/);
    const refused = await c.submit('/imports', '/imports', { ...form, action: 'commit' });
    expect(refused.status).toBe(422);
    expect(refused.text_).toContain('Not imported: the file has bad rows');
    const done = await c.submit('/imports', '/imports', { ...form, action: 'commit', skip_bad_rows: 'true' });
    expect(done.status).toBe(201);
    expect(done.text_).toContain('Imported 1, skipped 1.');
    expect(await t.db.knex('contact_addresses').where('address', '+51987660011').pluck('channel')).toEqual(['sms']);
  });

  it('keeps the form and names the problem when the import cannot start', async () => {
    const c = new Client(t.url);
    await c.login('admin@example.org');
    const r = await c.submit('/imports', '/imports', { list: 'news', basis: 'consent', evidence: 'x', content: 'phone\n+51987660020\n', action: 'dry_run' });
    expect(r.status).toBe(400);
    expect(r.text_).toContain('<strong>evidence</strong>');
    expect(r.text_).toMatch(/\+51987660020\s*<\/textarea>/);
  });

  it('shows the history to readers without the form', async () => {
    const c = new Client(t.url);
    await c.login('broadcaster@example.org');
    const page = await c.get('/imports');
    expect(page.status).toBe(200);
    expect(page.text_).not.toContain('id="import-form"');
    expect(page.text_).toContain('pasted.csv');
  });
});

describe('ayni contacts import', () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli-main.ts'), ...args], { cwd: ROOT, env: { ...process.env, DATABASE_URL: t.test.url, LOG_LEVEL: 'silent', DEFAULT_COUNTRY: 'PE', NODE_ENV: 'test' } }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });

  it('exits 2 listing the bad rows on a dry run, and imports with --skip-bad-rows', async () => {
    const file = join(dir, 'gente.csv');
    writeFileSync(file, 'Telefono;Nombre\n+51987660031;Flor\n0051 987;Mal\n');
    const dry = await cli(['contacts', 'import', file, '--list', 'news', '--dry-run', '--basis', 'consent', '--evidence', EVIDENCE, '--map', 'phone=Telefono,name=Nombre']);
    expect(dry.code).toBe(2);
    expect(dry.stdout).toContain('Dry run');
    expect(dry.stderr).toMatch(/row 3, Telefono: invalid phone number: /);
    const done = await cli(['contacts', 'import', file, '--list', 'news', '--skip-bad-rows', '--basis', 'consent', '--evidence', EVIDENCE, '--channels', 'whatsapp']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/Imported \(import \d+\): gente\.csv into list news/);
    const consent = await t.db.knex('consents as c').join('contact_addresses as a', 'a.contact_id', 'c.contact_id').where('a.address', '+51987660031').first('c.evidence_ref', 'c.method');
    expect(consent.method).toBe('import');
    expect(consent.evidence_ref).toMatch(/^import:\d+ gente\.csv by cli$/);
    const wrong = await cli(['contacts', 'import', file, '--list', 'nope', '--evidence', EVIDENCE, '--basis', 'consent']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/there is no list "nope"/);
  }, 60_000);
});
