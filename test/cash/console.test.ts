/**
 * The cash console pages: a cash officer creates a list, uploads a beneficiary file (multipart
 * form: dry run, then import), resolves a duplicate, enrols, records a distribution, uploads the
 * provider's report and reads the PDM page; a report viewer sees distributions and reports but no
 * list; an upload without the form's CSRF token or without a session changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toInt } from '../../src/db/values.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let cash: Client;
let viewer: Client;

const cookieOf = (c: Client) => [...(c as unknown as { cookies: Map<string, string> }).cookies].map(([k, v]) => `${k}=${v}`).join('; ');

/** Posts a multipart form the way a browser does, with the page's CSRF token unless told otherwise. */
async function upload(c: Client | null, page: string, action: string, fields: Record<string, string>, file: { name: string; content: string }, csrf = true) {
  const form = new FormData();
  if (c && csrf) form.set('_csrf', Client.csrfFrom((await c.get(page)).text_));
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([file.content], { type: 'text/csv' }), file.name);
  const res = await fetch(t.url + action, { method: 'POST', body: form, headers: c ? { cookie: cookieOf(c) } : {}, redirect: 'manual' });
  return { status: res.status, text: await res.text() };
}

const FILE = 'household_id,name,phone,admin1,household_size,vulnerability\nH1,Rosa Quispe,987300001,Tumbes,4,disability\nH2,Luis Soto,987300002,Tumbes,x,\nH3,Ana Ruiz,987300001,Tumbes,2,\n';
const EVIDENCE = 'Registro presencial: aceptaron ser contactados por SMS sobre el programa.';

beforeAll(async () => {
  t = await startTestApp();
  await makeUser(t.db, 'cash');
  await makeUser(t.db, 'viewer');
  cash = new Client(t.url);
  viewer = new Client(t.url);
  expect((await cash.login('cash@example.org')).status).toBe(302);
  expect((await viewer.login('viewer@example.org')).status).toBe(302);
});
afterAll(() => t?.close());

describe('cash console', () => {
  let listId = 0;

  it('creates a list and imports a file: dry run first, then the good rows', async () => {
    const home = await cash.get('/cash');
    expect(home.status).toBe(200);
    expect(home.text_).toContain('Beneficiary lists');
    expect(home.text_).toContain('href="/cash"');
    const created = await cash.submit('/cash', '/cash/lists', { name: 'Tumbes consola', description: '' });
    expect(created.status).toBe(302);
    listId = Number(/\/cash\/lists\/(\d+)/.exec(created.headers.get('location')!)![1]);

    const page = `/cash/lists/${listId}/import`;
    const dry = await upload(cash, page, page, { dry_run: 'true', basis: 'consent', evidence: EVIDENCE }, { name: 'tumbes.csv', content: FILE });
    expect(dry.status).toBe(200);
    expect(dry.text).toContain('Dry run: nothing was written');
    expect(dry.text).toMatch(/<td>3<\/td><td>household_size<\/td><td>x<\/td><td>the household size must be a whole number from 1 to 50<\/td>/);
    expect(dry.text).toMatch(/<td>4<\/td><td>phone number<\/td><td>same as row 2<\/td>/);
    expect(toInt((await t.db.knex('cash_beneficiaries').count({ n: '*' }))[0].n)).toBe(0);

    const done = await upload(cash, page, page, { skip_bad_rows: 'true', basis: 'consent', evidence: EVIDENCE }, { name: 'tumbes.csv', content: FILE });
    expect(done.text).toContain('Imported');
    expect(toInt((await t.db.knex('cash_beneficiaries').where('list_id', listId).count({ n: '*' }))[0].n)).toBe(2);
  });

  it('refuses an upload without the form token or without a session, writing nothing', async () => {
    const page = `/cash/lists/${listId}/import`;
    const noToken = await upload(cash, page, page, { skip_bad_rows: 'true', evidence: EVIDENCE }, { name: 'x.csv', content: FILE }, false);
    expect(noToken.status).toBe(403);
    const anonymous = await upload(null, page, page, { skip_bad_rows: 'true', evidence: EVIDENCE }, { name: 'x.csv', content: FILE });
    expect(anonymous.status).toBe(401);
    const asViewer = await upload(viewer, '/cash', page, { skip_bad_rows: 'true', evidence: EVIDENCE }, { name: 'x.csv', content: FILE });
    expect(asViewer.status).toBe(403);
    expect(toInt((await t.db.knex('cash_beneficiaries').where('list_id', listId).count({ n: '*' }))[0].n)).toBe(2);
  });

  it('resolves a duplicate, enrols, records a distribution and imports the provider report', async () => {
    const dups = await cash.get(`/cash/lists/${listId}/duplicates`);
    expect(dups.status).toBe(200);
    const dupId = /action="\/cash\/duplicates\/(\d+)\/resolve"/.exec(dups.text_)![1];
    const keep = /value="keep_one:(\d+)" required/.exec(dups.text_)![1];
    const resolved = await cash.submit(`/cash/lists/${listId}/duplicates`, `/cash/duplicates/${dupId}/resolve`, { decision: `keep_one:${keep}`, list_id: String(listId), reason: '' });
    expect(resolved.status).toBe(302);
    const enrol = await cash.submit(`/cash/lists/${listId}`, `/cash/lists/${listId}/status`, { from: 'candidate', status: 'enrolled' });
    expect(enrol.status).toBe(200);
    expect(enrol.text_).toContain('1 beneficiaries changed.');

    const created = await cash.submit('/cash', '/cash/distributions', {
      list_id: String(listId), name: 'Ronda consola', date: '2026-10-01', amount: '200', currency: 'PEN', modality: 'voucher', provider: 'Tienda', pdm_days: '', pdm_sampling: 'all', pdm_confidence: '', pdm_margin: '',
    });
    expect(created.status).toBe(302);
    const distPath = created.headers.get('location')!;
    const dist = await cash.get(distPath);
    expect(dist.status).toBe(200);
    expect(dist.text_).toContain('Rosa Quispe');
    expect(dist.text_).toContain('Start monitoring now');

    const report = 'household_id,status,reference\nH1,paid,R-1\n';
    const r = await upload(cash, distPath, `${distPath}/transfers/import`, { skip_bad_rows: 'false' }, { name: 'report.csv', content: report });
    expect(r.text).toContain('Imported');
    expect(r.text).toMatch(/Transfers updated<\/dt><dd>1</);
  });

  it('lets a report viewer read distributions and reports, and nothing with names', async () => {
    const home = await viewer.get('/cash');
    expect(home.status).toBe(200);
    expect(home.text_).toContain('Ronda consola');
    expect(home.text_).not.toContain('href="/cash/lists/');
    expect(home.text_).not.toContain('action="/cash/distributions"');
    const dist = await viewer.get('/cash/distributions/1');
    expect(dist.status).toBe(200);
    expect(dist.text_).not.toContain('Rosa Quispe');
    expect((await viewer.get('/cash/distributions/1/report')).status).toBe(200);
    expect((await viewer.get(`/cash/lists/${listId}`)).status).toBe(403);
  });

  it('shows the pages in Spanish', async () => {
    const es = new Client(t.url);
    await makeUser(t.db, 'cash', 'cash-es@example.org');
    await t.db.knex('staff_users').where('email', 'cash-es@example.org').update({ locale: 'es' });
    await es.login('cash-es@example.org');
    const page = await es.get(`/cash/lists/${listId}`);
    expect(page.text_).toContain('Agregar candidatos entre los suscriptores');
    expect((await es.get('/cash/distributions/1/report')).text_).toContain('Reporte PDM');
  });
});
