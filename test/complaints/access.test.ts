/**
 * Roles × routes: nobody but a focal point can see or infer a sensitive case — on the console, the
 * API, search, CSV exports, counts, referrals, the audit log, the case-access log and a contact's
 * subject-access export. For everyone else, a sensitive case's code answers exactly as a code nobody
 * used (404 with the same body), and every list, export and count is the same before and after the
 * case exists (only the dashboard's one anonymous total moves).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildChannels } from '../../src/channels/index.js';
import { runComplaintsJob } from '../../src/complaints/sla.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { ROLES, ROLE_PERMISSIONS, type Role } from '../../src/staff/roles.js';
import { createToken } from '../../src/staff/service.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const clients = {} as Record<Role, Client>;
const tokens = {} as Record<Role, string>;
const NON_FOCAL = ROLES.filter((r) => r !== 'focal_point');
const has = (role: Role, p: string) => (ROLE_PERMISSIONS[role] as readonly string[]).includes(p);
const bearer = (role: Role) => ({ authorization: `Bearer ${tokens[role]}` });
const api = (role: Role, method: string, path: string, json?: unknown) => new Client(t.url).request(method, path, { headers: bearer(role), json });
const strip = (body: string) => body.replace(/"requestId":"[^"]*"/g, '').replace(/[0-9a-f-]{36}/g, 'RID');

let seq = 0;
const sms = (from: string, text: string): ParsedInbound => ({ channel: 'simulator', medium: 'sms', providerId: `acc-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date() });
const services = () => ({ config: t.config, db: t.db, log: createLogger('silent') });

let visible = ''; // a programme complaint
let sensitive = ''; // sexual exploitation and abuse
const UNUSED = 'WWWWWW';
const SECRET_WORDS = 'promotor-Quispe-pidio-favores';
let sensitiveContactId = 0;

type Snapshot = Record<string, string>;
/** Everything a role can learn about complaints without knowing a code. */
async function snapshot(role: Role): Promise<Snapshot> {
  const out: Snapshot = {};
  const grab = async (name: string, res: Response & { text_: string }) => {
    out[name] = `${res.status} ${strip(res.text_)}`;
  };
  await grab('api.list', await api(role, 'GET', '/api/v1/complaints?limit=500'));
  await grab('api.search.code', await api(role, 'GET', `/api/v1/complaints?q=${sensitive || UNUSED}`));
  await grab('api.search.words', await api(role, 'GET', '/api/v1/complaints?q=favores'));
  await grab('api.filter.category', await api(role, 'GET', '/api/v1/complaints?category=sea'));
  await grab('api.filter.sensitive', await api(role, 'GET', '/api/v1/complaints?sensitive=true'));
  await grab('api.filter.priority', await api(role, 'GET', '/api/v1/complaints?priority=high'));
  await grab('api.export', await api(role, 'GET', '/api/v1/complaints/export'));
  const stats = await api(role, 'GET', '/api/v1/complaints/stats');
  if (stats.status === 200) {
    const { sensitiveTotal: _s, ...rest } = JSON.parse(stats.text_) as Record<string, unknown>;
    out['api.stats'] = JSON.stringify(rest);
  } else out['api.stats'] = String(stats.status);
  await grab('api.referrals', await api(role, 'GET', '/api/v1/referrals'));
  const page = await clients[role].get('/complaints');
  out['console.inbox.status'] = String(page.status);
  out['console.inbox.codes'] = [...page.text_.matchAll(/href="\/complaints\/([A-Z0-9]{6})"/g)].map((m) => m[1]).sort().join(',');
  const csv = await clients[role].get('/complaints/export.csv');
  out['console.export'] = `${csv.status} ${csv.status === 200 ? csv.text_ : ''}`;
  const refs = await clients[role].get('/referrals');
  out['console.referrals'] = `${refs.status} ${[...refs.text_.matchAll(/<code>([A-Z0-9]{6})<\/code>/g)].map((m) => m[1]).join(',')}`;
  return out;
}

const before = {} as Record<Role, Snapshot>;
const after = {} as Record<Role, Snapshot>;

beforeAll(async () => {
  t = await startTestApp();
  for (const role of ROLES) {
    await makeUser(t.db, role);
    const c = new Client(t.url);
    expect((await c.login(`${role}@example.org`)).status).toBe(302);
    clients[role] = c;
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `${role} token`, role })).secret;
  }
  const service = await api('focal_point', 'POST', '/api/v1/referral-services', { organisation: 'Centro de Salud Mental Comunitario', name: 'Atención psicológica', languages: 'es' });
  expect(service.status).toBe(201);
  const serviceId = JSON.parse(service.text_).id;

  // A visible case, entered by a hotline operator, with a referral.
  const made = await api('complaints', 'POST', '/api/v1/complaints', { source: 'phone', category: 'programme', narrative: 'La lista de beneficiarios no incluye a mi familia', phone: '+51987400001', followupConsent: true, wantsAnswer: true });
  expect(made.status, made.text_).toBe(201);
  visible = JSON.parse(made.text_).code;
  expect((await api('complaints', 'POST', `/api/v1/complaints/${visible}/referrals`, { serviceId, consent: true })).status).toBe(201);

  for (const role of ROLES) before[role] = await snapshot(role);

  // The sensitive case arrives by SMS: keyword, category 7, what happened, keep number, no answer.
  const phone = '+51987400002';
  for (const text of ['QUEJA', '7', `El ${SECRET_WORDS} a cambio de la tarjeta`, '1', '2']) await receive(services(), ROUTER_STEPS, [sms(phone, text)]);
  const row = await t.db.knex('complaints').where('sensitive', true).first('code', 'contact_id');
  sensitive = row.code;
  sensitiveContactId = Number(row.contact_id);
  // Its acknowledgement is sent, then blanked by the job; a focal point refers and handles it.
  const channels = buildChannels(t.config);
  await new Dispatcher({ db: t.db, config: t.config, log: createLogger('silent'), adapters: channels.all }).runUntilIdle();
  await runComplaintsJob(t.db, t.config);
  await channels.close();
  expect((await api('focal_point', 'POST', `/api/v1/complaints/${sensitive}/referrals`, { serviceId, consent: true, note: 'derivada con su acuerdo' })).status).toBe(201);
  expect((await api('focal_point', 'POST', `/api/v1/complaints/${sensitive}/notes`, { note: 'entrevista hecha' })).status).toBe(201);
  expect((await clients.focal_point.get(`/complaints/${sensitive}`)).status).toBe(200);

  for (const role of ROLES) after[role] = await snapshot(role);
}, 240_000);
afterAll(() => t?.close());

describe('a focal point', () => {
  it('sees the sensitive case everywhere, with its narrative', async () => {
    const res = await api('focal_point', 'GET', `/api/v1/complaints/${sensitive}`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text_).narrative).toContain(SECRET_WORDS);
    expect(after.focal_point['api.list']).toContain(sensitive);
    expect(after.focal_point['api.export']).toContain(SECRET_WORDS);
    expect(after.focal_point['console.inbox.codes']).toContain(sensitive);
    expect(after.focal_point['console.referrals']).toContain(sensitive);
    const page = await clients.focal_point.get(`/complaints/${sensitive}`);
    expect(page.text_).toContain(SECRET_WORDS);
    expect(page.text_).toContain('entrevista hecha');
    expect((await clients.focal_point.get('/pss')).status).toBe(200);
    expect((await clients.focal_point.get(`/pss?contact=${sensitiveContactId}&open=true`)).status).toBe(200);
    expect((await clients.focal_point.get('/referrals')).status).toBe(200);
  });

  it('every read of it is audited, under a reference that does not name it', async () => {
    const reads = await t.db.knex('audit_events').where('action', 'complaint.read').where('entity_type', 'restricted');
    expect(reads.length).toBeGreaterThanOrEqual(2);
    const all = await t.db.knex('audit_events').select('entity_id', 'detail');
    expect(JSON.stringify(all)).not.toContain(sensitive);
    const access = await api('focal_point', 'GET', `/api/v1/complaints/${sensitive}/access`);
    expect(JSON.parse(access.text_).data.filter((e: { action: string }) => e.action === 'complaint.read').length).toBe(reads.length);
  });
});

describe.each(NON_FOCAL)('%s', (role) => {
  it('gets exactly what a code nobody used gets, on every case route (API and console)', async () => {
    const routes: [string, string, unknown?][] = [
      ['GET', '/api/v1/complaints/CODE'],
      ['GET', '/api/v1/complaints/CODE/access'],
      ['GET', '/api/v1/complaints/CODE/referrals'],
      ['POST', '/api/v1/complaints/CODE/status', { status: 'in_progress' }],
      ['POST', '/api/v1/complaints/CODE/notes', { note: 'x' }],
      ['POST', '/api/v1/complaints/CODE/priority', { priority: 'low' }],
      ['POST', '/api/v1/complaints/CODE/assign', { assigneeId: null }],
      ['POST', '/api/v1/complaints/CODE/sensitive', { sensitive: false }],
      ['POST', '/api/v1/complaints/CODE/category', { category: 'question' }],
      ['POST', '/api/v1/complaints/CODE/referrals', { serviceId: 1, consent: true }],
    ];
    for (const [method, path, json] of routes) {
      const real = await api(role, method, path.replace('CODE', sensitive), json);
      const none = await api(role, method, path.replace('CODE', UNUSED), json);
      expect(real.status, `${method} ${path}`).toBe(none.status);
      expect([403, 404]).toContain(real.status);
      expect(strip(real.text_)).toBe(strip(none.text_));
      if (has(role, 'complaints.read')) expect(real.status, `${method} ${path}`).toBe(method === 'GET' || has(role, 'complaints.manage') ? 404 : 403);
    }
    const page = await clients[role].get(`/complaints/${sensitive}`);
    const nothing = await clients[role].get(`/complaints/${UNUSED}`);
    expect(page.status).toBe(nothing.status);
    expect(page.status).toBe(has(role, 'complaints.read') ? 404 : 403);
    expect(strip(page.text_)).toBe(strip(nothing.text_));
    expect(page.text_).not.toContain(SECRET_WORDS);
  });

  it('learns nothing from lists, search, filters, exports, counts or referrals: they are the same as before the case existed', () => {
    for (const [name, value] of Object.entries(before[role])) {
      expect(after[role][name], name).toBe(value);
    }
    for (const value of Object.values(after[role])) {
      expect(value).not.toContain(sensitive);
      expect(value).not.toContain(SECRET_WORDS);
    }
  });

  it('sees at most one anonymous total of sensitive cases, on the dashboard', async () => {
    const stats = await api(role, 'GET', '/api/v1/complaints/stats');
    if (!has(role, 'reports.read')) return expect(stats.status).toBe(403);
    const body = JSON.parse(stats.text_);
    expect(body.sensitiveTotal).toBe(1);
    expect(Object.keys(body).sort()).toEqual(['byCategory', 'byPriority', 'byStatus', 'open', 'overdue', 'sensitiveTotal', 'total']);
    expect(body.byCategory.sea).toBeUndefined();
  });

  it('cannot reach psychosocial triage at all', async () => {
    expect((await api(role, 'GET', '/api/v1/pss/triage')).status).toBe(403);
    expect((await clients[role].get('/pss')).status).toBe(403);
  });

  it('finds no trace of it in the audit log, the console audit page or the person’s subject-access export', async () => {
    if (has(role, 'audit.read')) {
      const auditApi = await api(role, 'GET', '/api/v1/audit?limit=500');
      expect(auditApi.text_).not.toContain(sensitive);
      const auditPage = await clients[role].get('/audit');
      expect(auditPage.text_).not.toContain(sensitive);
    }
    if (has(role, 'contacts.read')) {
      const sar = await api(role, 'GET', `/api/v1/contacts/${sensitiveContactId}/export`);
      expect(sar.status).toBe(200);
      expect(sar.text_).not.toContain(sensitive);
      expect(sar.text_).not.toContain(SECRET_WORDS);
    }
  });
});

describe('what others can see', () => {
  it('a complaints handler sees and handles the visible case', async () => {
    const res = await api('complaints', 'GET', `/api/v1/complaints/${visible}`);
    expect(res.status).toBe(200);
    expect(after.complaints['api.list']).toContain(visible);
    expect(after.complaints['console.inbox.codes']).toContain(visible);
    expect(after.complaints['api.export']).toContain(visible);
  });

  it('marking a case sensitive takes it out of the handler’s view at once, and it cannot be marked back by them', async () => {
    const made = await api('complaints', 'POST', '/api/v1/complaints', { source: 'phone', category: 'programme', narrative: 'el coordinador nos grita y amenaza', anonymous: true });
    const code = JSON.parse(made.text_).code;
    expect((await api('complaints', 'GET', `/api/v1/complaints/${code}`)).status).toBe(200);
    const mark = await api('complaints', 'POST', `/api/v1/complaints/${code}/sensitive`, { sensitive: true });
    expect(mark.status).toBe(200);
    expect(JSON.parse(mark.text_)).toEqual({ visible: false });
    expect((await api('complaints', 'GET', `/api/v1/complaints/${code}`)).status).toBe(404);
    expect((await api('complaints', 'POST', `/api/v1/complaints/${code}/sensitive`, { sensitive: false })).status).toBe(404);
    const row = await t.db.knex('complaints').where('code', code).first('narrative');
    expect(row.narrative).not.toContain('grita');
    const focal = await api('focal_point', 'GET', `/api/v1/complaints/${code}`);
    expect(JSON.parse(focal.text_).narrative).toBe('el coordinador nos grita y amenaza');
  });

  it('a sensitive case can be assigned only to a focal point', async () => {
    const users = await t.db.knex('staff_users').select('id', 'role');
    const handlerId = users.find((u: { role: string }) => u.role === 'complaints').id;
    const focalId = users.find((u: { role: string }) => u.role === 'focal_point').id;
    const no = await api('focal_point', 'POST', `/api/v1/complaints/${sensitive}/assign`, { assigneeId: handlerId });
    expect(no.status).toBe(400);
    expect(JSON.parse(no.text_).error.details.assigneeId).toMatch(/focal point/);
    expect((await api('focal_point', 'POST', `/api/v1/complaints/${sensitive}/assign`, { assigneeId: focalId })).status).toBe(200);
  });
});
