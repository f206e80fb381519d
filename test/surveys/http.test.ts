/**
 * Surveys over HTTP: the API (catalog, validate, runs with a preview count, results, exports,
 * sessions) with its permissions and audit events, and the console pages (list, run form with
 * preview, run, results with tables beside charts, downloads).
 */
import ExcelJS from 'exceljs';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { createRun } from '../../src/surveys/runs.js';
import { runSurveyTimers } from '../../src/surveys/timers.js';
import { makeContact, say, type TestContact } from './helpers.js';
import type { RouterServices } from '../../src/messaging/types.js';
import { createLogger } from '../../src/log.js';

let t: TestApp;
let s: RouterServices;
const tokens: Partial<Record<Role, string>> = {};
const api = (role: Role, method: string, path: string, json?: unknown) =>
  new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[role]}` }, json });

let people: TestContact[] = [];
let runId = 0;

/** Answers of three people to the needs assessment: two complete, one stops after two questions. */
const SCRIPTS: string[][] = [
  ['1', '1', '2', '1', '1', '1 2', '1 3 5', '2', '1', '2', '1', '20', '1', '1', '1', '1', '1', '1', '1', '1', '1'],
  ['1', '3', '2', '1', '1', '1', '3', '2 3', '2', '2', '2', '40', '2', '1', '1', '1', '1', '1', '3', '2', '2'],
  ['1', '3', '1'],
];

beforeAll(async () => {
  t = await startTestApp();
  s = { config: t.config, db: t.db, log: createLogger('silent') };
  for (const role of ['editor', 'cash', 'viewer'] as Role[]) tokens[role] = (await createToken(t.db, SYSTEM, { name: role, role })).secret;
  await makeUser(t.db, 'editor');
  people = [await makeContact(s), await makeContact(s), await makeContact(s), await makeContact(s, { consent: false })];
  const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Prueba', audience: { contactIds: people.map((p) => p.id) } });
  runId = run.id;
  for (const [i, script] of SCRIPTS.entries()) for (const text of script) await say(s, people[i], text);
});
afterAll(() => t?.close());

describe('API', () => {
  it('lists the catalog to readers of results, not to viewers', async () => {
    const r = await api('cash', 'GET', '/surveys');
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text_);
    expect(body.refused).toEqual([]);
    expect(body.data.find((x: { key: string }) => x.key === 'needs-assessment')).toMatchObject({ languages: ['es', 'en'], questions: 21, format: 'yaml', consentQuestion: true });
    expect((await api('viewer', 'GET', '/surveys')).status).toBe(403);
    const detail = JSON.parse((await api('cash', 'GET', '/surveys/needs-assessment')).text_);
    expect(detail.data.items.find((i: { name: string }) => i.name === 'topics')).toMatchObject({ type: 'select_multiple', constraint: 'count-selected(.) <= 3' });
    expect(detail.data.versions).toHaveLength(1);
  });

  it('validates a definition without installing it, with each problem located', async () => {
    const r = await api('editor', 'POST', '/surveys/validate', { fileName: 'x.yaml', content: 'settings:\n  id: x\n  title: X\n  default_language: es\n  languages: [es]\nquestions:\n  - name: a\n    type: selct_one\n' });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text_);
    expect(body.valid).toBe(false);
    expect(body.problems[0].where).toBe('line 8 (questions[0].type)');
    expect((await api('cash', 'POST', '/surveys/validate', { fileName: 'x.yaml', content: 'x' })).status).toBe(403);
  });

  it('previews an audience: only consenting, reachable contacts count', async () => {
    const r = await api('editor', 'POST', '/survey-runs/preview', { audience: { contactIds: people.map((p) => p.id) } });
    expect(JSON.parse(r.text_)).toEqual({ count: 3, inSession: 1 });
  });

  it('refuses a bad run with the field and reason, and changes nothing', async () => {
    const before = await t.db.knex('survey_runs').count({ n: '*' });
    const bad = await api('editor', 'POST', '/survey-runs', { survey: 'needs-assessment', name: 'x', audience: { query: 'language = = es' } });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text_).error.code).toBe('segment_invalid');
    const kw = await api('editor', 'POST', '/survey-runs', { survey: 'needs-assessment', name: 'x', audience: { contactIds: [1] }, keyword: 'STOP' });
    expect(kw.status).toBe(400);
    expect(JSON.parse(kw.text_).error.details.keyword).toMatch(/already means something/);
    const empty = await api('editor', 'POST', '/survey-runs', { survey: 'needs-assessment', name: 'x', audience: {} });
    expect(JSON.parse(empty.text_).error.details['body.audience']).toMatch(/choose an audience/);
    expect((await api('editor', 'POST', '/survey-runs', { survey: 'nope', name: 'x', audience: { contactIds: [1] } })).status).toBe(404);
    expect((await api('cash', 'POST', '/survey-runs', { survey: 'needs-assessment', name: 'x', audience: { contactIds: [1] } })).status).toBe(403);
    expect(await t.db.knex('survey_runs').count({ n: '*' })).toEqual(before);
  });

  it('starts a run over the API and audits it', async () => {
    const fresh = await makeContact(s);
    const r = await api('editor', 'POST', '/survey-runs', { survey: 'needs-assessment', name: 'API', audience: { contactIds: [fresh.id] }, medium: 'sms', quietHours: null });
    expect(r.status).toBe(201);
    const body = JSON.parse(r.text_);
    expect(body.data).toMatchObject({ status: 'running', targeted: 1, medium: 'sms' });
    expect(body.started).toMatchObject({ sessions: 1, active: 1, queued: 1 });
    const one = JSON.parse((await api('cash', 'GET', `/survey-runs/${body.data.id}`)).text_);
    expect(one.sessions).toMatchObject({ active: 1 });
    expect(await t.db.knex('audit_events').where({ action: 'survey_run.create', entity_id: String(body.data.id) }).first()).toBeTruthy();
    const list = JSON.parse((await api('cash', 'GET', '/survey-runs?survey=needs-assessment')).text_);
    expect(list.data.map((x: { id: number }) => x.id)).toContain(body.data.id);
  });

  it('counts the answers per question, with completion and drop-off', async () => {
    const r = await api('cash', 'GET', `/surveys/needs-assessment/results?run=${runId}`);
    expect(r.status).toBe(200);
    const res = JSON.parse(r.text_).data;
    expect(res.sessions).toMatchObject({ total: 3, completed: 2, active: 1 });
    expect(res.completionRate).toBe(66.7);
    const q = (name: string) => res.questions.find((x: { name: string }) => x.name === name);
    expect(q('phone_access').answered).toBe(3);
    expect(q('phone_access').choices.find((c: { key: string }) => c.key === 'shared')).toEqual({ key: 'shared', label: 'Compartido', count: 2, percent: 66.7 });
    expect(q('topics').choices.filter((c: { count: number }) => c.count > 0).map((c: { key: string; count: number }) => [c.key, c.count])).toEqual([['documents', 1], ['health', 2], ['school', 1]]);
    expect(q('age').numbers).toEqual({ n: 2, mean: 30, median: 30, min: 20, max: 40 });
    expect(q('age_group').values).toEqual(expect.arrayContaining([{ value: '18-24', count: 1 }, { value: '25-59', count: 1 }]));
    expect(q('rumour_topic').answered).toBe(0);
    // Nothing has expired yet: the third person is still in progress, not a drop-off.
    expect(res.dropOff).toEqual([]);
  });

  it('exports one row per session as CSV, with a pseudonymous respondent, and audits it', async () => {
    const r = await api('cash', 'GET', `/surveys/needs-assessment/export?format=csv&run=${runId}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-disposition')).toMatch(/attachment; filename="needs-assessment-run\d+-wide-\d{4}-\d{2}-\d{2}\.csv"/);
    const rows = parse(r.text_.replace(/^\uFEFF/, ''), { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(3);
    expect(Object.keys(rows[0])).toEqual(expect.arrayContaining(['session', 'respondent', 'run', 'status', 'phone_access', 'topics', 'topics/health', 'age', 'age_group', 'disability']));
    const done = rows.filter((x) => x.status === 'completed');
    expect(done.map((x) => x.age).sort()).toEqual(['20', '40']);
    expect(done.map((x) => x['topics/health'])).toEqual(['1', '1']);
    for (const row of rows) {
      expect(row.respondent).toMatch(/^[0-9a-f]{16}$/);
      expect(Object.values(row).join(' ')).not.toContain('+51');
    }
    const ev = await t.db.knex('audit_events').where({ action: 'survey.export' }).orderBy('id', 'desc').first();
    expect(JSON.parse(String(ev.detail))).toMatchObject({ format: 'csv', layout: 'wide', run: runId, sessions: 3 });
  });

  it('exports one row per answer (long) and XLSX with a codebook', async () => {
    const long = await api('cash', 'GET', `/surveys/needs-assessment/export?format=csv&layout=long&run=${runId}`);
    const rows = parse(long.text_.replace(/^\uFEFF/, ''), { columns: true }) as Record<string, string>[];
    expect(rows.find((x) => x.question === 'topics' && x.value === 'documents health school')).toMatchObject({ label: 'Documentos, Salud, Escuela', type: 'select_multiple' });
    const x = await new Client(t.url).request('GET', `/api/v1/surveys/needs-assessment/export?format=xlsx&run=${runId}`, { headers: { authorization: `Bearer ${tokens.cash}` } });
    expect(x.headers.get('content-type')).toMatch(/spreadsheetml/);
    const res = await fetch(`${t.url}/api/v1/surveys/needs-assessment/export?format=xlsx&run=${runId}`, { headers: { authorization: `Bearer ${tokens.cash}` } });
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(await res.arrayBuffer());
    expect(wb.worksheets.map((w) => w.name)).toEqual(['answers', 'codebook']);
    expect(wb.getWorksheet('answers')!.actualRowCount).toBe(4);
    const codebook = wb.getWorksheet('codebook')!;
    expect(codebook.getRow(1).values).toEqual([undefined, 'question', 'type', 'required', 'relevant', 'constraint', 'calculation', 'choice', 'label::es', 'label::en']);
    const found: string[] = [];
    codebook.eachRow((row) => found.push(String(row.getCell(1).value) + '/' + String(row.getCell(7).value ?? '')));
    expect(found).toContain('topics/health');
  });

  it('starts one contact’s session and shows it (audited); without consent it is refused', async () => {
    const c = await makeContact(s, { medium: 'whatsapp' });
    const r = await api('editor', 'POST', '/survey-sessions', { survey: 'needs-assessment', contactId: c.id });
    expect(r.status).toBe(201);
    const id = JSON.parse(r.text_).data.sessionId;
    const view = JSON.parse((await api('cash', 'GET', `/survey-sessions/${id}`)).text_).data;
    expect(view).toMatchObject({ id, contactId: c.id, medium: 'whatsapp', status: 'active', currentQuestion: '~consent', answers: [] });
    expect(await t.db.knex('audit_events').where({ action: 'survey_session.read', entity_id: String(id) }).first()).toBeTruthy();
    const refused = await api('editor', 'POST', '/survey-sessions', { survey: 'needs-assessment', contactId: people[3].id });
    expect(refused.status).toBe(409);
  });

  it('after expiry, the unfinished session shows where it stopped; completion counts it as started', async () => {
    await runSurveyTimers(s, new Date(Date.now() + 80 * 3_600_000));
    const res = JSON.parse((await api('cash', 'GET', `/surveys/needs-assessment/results?run=${runId}`)).text_).data;
    expect(res.sessions).toMatchObject({ total: 3, completed: 2, expired: 1, active: 0 });
    expect(res.completionRate).toBe(66.7);
    expect(res.dropOff).toEqual([{ question: 'complaint_channel', label: 'Para presentarnos una queja en privado, ¿qué medio prefiere?', count: 1 }]);
  });
});

describe('console', () => {
  let c: Client;
  beforeAll(async () => {
    c = new Client(t.url);
    await c.login('editor@example.org');
  });

  it('lists surveys and checks a pasted definition', async () => {
    const page = await c.get('/surveys');
    expect(page.status).toBe(200);
    expect(page.text_).toContain('href="/surveys/needs-assessment"');
    expect(page.text_).toContain('href="/surveys/needs-assessment/runs/new"');
    const checked = await c.submit('/surveys', '/surveys/validate', { definition: 'settings:\n  id: x\n' });
    expect(checked.status).toBe(400);
    expect(checked.text_).toContain('line 1 (questions)');
    expect(checked.text_).toContain('is required');
  });

  it('shows a survey with its questions and logic', async () => {
    const page = await c.get('/surveys/needs-assessment');
    expect(page.text_).toContain('<code>rumour_topic</code>');
    expect(page.text_).toContain('${rumours} &#x3D; &#x27;yes&#x27;');
  });

  it('previews the audience count, then starts a run from the form', async () => {
    const fresh = await makeContact(s);
    const form = { name: 'Desde la consola', contact_ids: `${fresh.id}, ${people[3].id}`, medium: 'auto', ask_language: 'true', reminder_hours: '24', max_reminders: '1', expiry_hours: '72' };
    const preview = await c.submit('/surveys/needs-assessment/runs/new', '/surveys/needs-assessment/runs', { ...form, action: 'preview' });
    expect(preview.status).toBe(200);
    expect(preview.text_).toContain('1 contacts would receive this survey (0 of them are in another survey now');
    expect(preview.text_).toContain('value="Desde la consola"');
    const started = await c.submit('/surveys/needs-assessment/runs/new', '/surveys/needs-assessment/runs', { ...form, action: 'start' });
    expect(started.status).toBe(302);
    const where = started.headers.get('location')!;
    expect(where).toMatch(/^\/survey-runs\/\d+$/);
    const run = await c.get(where);
    expect(run.text_).toContain('Desde la consola');
    expect(run.text_).toContain('The run has started');
  });

  it('re-renders the run form with the reason when the audience is wrong', async () => {
    const r = await c.submit('/surveys/needs-assessment/runs/new', '/surveys/needs-assessment/runs', { name: 'x', query: 'nonsense ==', action: 'start' });
    expect(r.status).toBe(400);
    expect(r.text_).toContain('value="nonsense &#x3D;&#x3D;"');
    expect(r.text_).toContain('<strong>audience.query</strong>: The segment query is not valid');
  });

  it('shows results as tables beside charts, with export links', async () => {
    const page = await c.get(`/surveys/needs-assessment/results?run=${runId}`);
    expect(page.status).toBe(200);
    expect(page.text_).toContain('<td>Compartido <code>shared</code></td><td>2</td><td>66.7</td>');
    expect(page.text_).toMatch(/<canvas data-chart="\{&quot;labels&quot;:\[&quot;Propio, con internet&quot;/);
    expect(page.text_).toContain('<script src="/static/chart.umd.js"></script>');
    expect(page.text_).toContain(`/surveys/needs-assessment/export?format=xlsx&amp;layout=wide&amp;run=${runId}`);
    const js = await c.get('/static/chart.umd.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect((await c.get('/static/survey-charts.js')).status).toBe(200);
  });

  it('downloads the CSV from the console (audited) and lists runs', async () => {
    const r = await c.get(`/surveys/needs-assessment/export?format=csv&run=${runId}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/csv/);
    const runs = await c.get('/survey-runs');
    expect(runs.text_).toContain('Prueba');
  });

  it('is closed to roles without survey permissions', async () => {
    await makeUser(t.db, 'viewer');
    const v = new Client(t.url);
    await v.login('viewer@example.org');
    expect((await v.get('/surveys')).status).toBe(403);
  });
});
