import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, Client, makeUser, PASSWORD, type TestApp } from '../helpers/app.js';
import { ROLES, ROLE_PERMISSIONS, type Role } from '../../src/staff/roles.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM, listAudit } from '../../src/staff/audit.js';

let t: TestApp;
const clients = {} as Record<Role, Client>;
const tokens = {} as Record<Role, string>;

beforeAll(async () => {
  t = await startTestApp({ LOGIN_MAX_FAILURES: '3' });
  for (const role of ROLES) {
    await makeUser(t.db, role);
    const c = new Client(t.url);
    const res = await c.login(`${role}@example.org`);
    expect(res.status).toBe(302);
    clients[role] = c;
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `${role} token`, role })).secret;
  }
});
afterAll(() => t?.close());

const bearer = (role: Role) => ({ authorization: `Bearer ${tokens[role]}` });

describe('roles on a sample of routes', () => {
  // route, method, permission that opens it
  const apiRoutes: [string, string, string][] = [
    ['GET', '/api/v1/staff/users', 'staff.manage'],
    ['GET', '/api/v1/tokens', 'staff.manage'],
    ['GET', '/api/v1/audit', 'audit.read'],
    ['GET', '/api/v1/inbox', 'inbox.read'],
    ['GET', '/api/v1/inbox/topics', 'inbox.read'],
  ];
  for (const [method, path, permission] of apiRoutes) {
    for (const role of ROLES) {
      const allowed = (ROLE_PERMISSIONS[role] as readonly string[]).includes(permission);
      it(`${role} ${allowed ? 'may' : 'may not'} ${method} ${path} with a token`, async () => {
        const res = await new Client(t.url).request(method, path, { headers: bearer(role) });
        expect(res.status).toBe(allowed ? 200 : 403);
        if (!allowed) expect(JSON.parse(res.text_).error.code).toBe('forbidden');
      });
    }
  }

  const consolePages: [string, string][] = [
    ['/staff/users', 'staff.manage'],
    ['/staff/tokens', 'staff.manage'],
    ['/audit', 'audit.read'],
    ['/inbox', 'inbox.read'],
    ['/', ''],
  ];
  for (const [path, permission] of consolePages) {
    for (const role of ROLES) {
      const allowed = !permission || (ROLE_PERMISSIONS[role] as readonly string[]).includes(permission);
      it(`${role} ${allowed ? 'sees' : 'is refused'} console page ${path}`, async () => {
        const res = await clients[role].get(path);
        expect(res.status).toBe(allowed ? 200 : 403);
      });
    }
  }

  it('the roles that answer people hold the inbox; cash teams and viewers do not', () => {
    expect(ROLES.filter((r) => (ROLE_PERMISSIONS[r] as readonly string[]).includes('inbox.read'))).toEqual(['admin', 'editor', 'broadcaster', 'complaints', 'focal_point']);
    expect(ROLES.filter((r) => (ROLE_PERMISSIONS[r] as readonly string[]).includes('inbox.reply'))).toEqual(['admin', 'editor', 'broadcaster', 'complaints', 'focal_point']);
  });

  it('only a focal point holds the sensitive-complaints permission; admin does not', () => {
    const holders = ROLES.filter((r) => (ROLE_PERMISSIONS[r] as readonly string[]).includes('complaints.sensitive'));
    expect(holders).toEqual(['focal_point']);
  });

  it('the navigation shows a viewer only what a viewer may open', async () => {
    const page = await clients.viewer.get('/');
    expect(page.text_).not.toContain('href="/staff/users"');
    const admin = await clients.admin.get('/');
    expect(admin.text_).toContain('href="/staff/users"');
  });

  it('an admin can create a user over the API and a non-admin cannot', async () => {
    const ok = await new Client(t.url).request('POST', '/api/v1/staff/users', { headers: bearer('admin'), json: { email: 'New.Person@Example.org', name: 'New', role: 'viewer' } });
    expect(ok.status).toBe(201);
    const body = JSON.parse(ok.text_);
    expect(body.data.email).toBe('new.person@example.org');
    expect(body.password).toMatch(/^[A-Za-z0-9]{20}$/);
    const no = await new Client(t.url).request('POST', '/api/v1/staff/users', { headers: bearer('editor'), json: { email: 'x@example.org', name: 'X', role: 'admin' } });
    expect(no.status).toBe(403);
    expect((await t.db.knex('staff_users').where('email', 'x@example.org')).length).toBe(0);
  });

  it('refuses a bad request naming each field and changes nothing', async () => {
    const before = (await t.db.knex('staff_users').count({ n: '*' }))[0].n;
    const res = await new Client(t.url).request('POST', '/api/v1/staff/users', { headers: bearer('admin'), json: { email: 'not-an-email', role: 'king' } });
    expect(res.status).toBe(400);
    const err = JSON.parse(res.text_).error;
    expect(err.code).toBe('validation_failed');
    expect(Object.keys(err.details).sort()).toEqual(['body.email', 'body.name', 'body.role']);
    expect((await t.db.knex('staff_users').count({ n: '*' }))[0].n).toBe(before);
  });
});

describe('API tokens', () => {
  it('work until revoked, then are refused', async () => {
    const c = new Client(t.url);
    const created = await c.request('POST', '/api/v1/tokens', { headers: bearer('admin'), json: { name: 'reporting', role: 'viewer' } });
    expect(created.status).toBe(201);
    const { data, secret } = JSON.parse(created.text_);
    expect(secret).toMatch(/^ayni_/);
    const me = await c.request('GET', '/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
    expect(me.status).toBe(200);
    expect(JSON.parse(me.text_)).toMatchObject({ type: 'token', role: 'viewer' });
    // the secret is never listed again
    const list = await c.request('GET', '/api/v1/tokens', { headers: bearer('admin') });
    expect(list.text_).not.toContain(secret);
    const revoked = await c.request('POST', `/api/v1/tokens/${data.id}/revoke`, { headers: bearer('admin') });
    expect(revoked.status).toBe(200);
    const after = await c.request('GET', '/api/v1/me', { headers: { authorization: `Bearer ${secret}` } });
    expect(after.status).toBe(401);
  });

  it('are stored only as hashes', async () => {
    const rows = await t.db.knex('api_tokens').select('token_hash');
    for (const r of rows) expect(Object.values(tokens)).not.toContain(r.token_hash);
  });

  it('refuses an unknown or malformed token with 401', async () => {
    for (const h of ['Bearer ayni_000000000000_nope-nope-nope-nope-nope', 'Bearer x', 'Basic abc']) {
      const res = await new Client(t.url).request('GET', '/api/v1/me', { headers: { authorization: h } });
      expect(res.status).toBe(401);
    }
  });
});

describe('CSRF', () => {
  it('refuses a console form without the token and accepts it with', async () => {
    const c = clients.admin;
    const without = await c.request('POST', '/staff/tokens', { form: { name: 'no csrf', role: 'viewer' } });
    expect(without.status).toBe(403);
    const wrong = await c.request('POST', '/staff/tokens', { form: { _csrf: 'x'.repeat(43), name: 'wrong csrf', role: 'viewer' } });
    expect(wrong.status).toBe(403);
    expect(await t.db.knex('api_tokens').whereIn('name', ['no csrf', 'wrong csrf'])).toHaveLength(0);
    const ok = await c.submit('/staff/tokens', '/staff/tokens', { name: 'with csrf', role: 'viewer' });
    expect(ok.status).toBe(201);
    expect(ok.text_).toContain('ayni_');
  });

  it('guards the sign-in form too (login CSRF)', async () => {
    const c = new Client(t.url);
    const res = await c.request('POST', '/login', { form: { email: 'admin@example.org', password: PASSWORD } });
    expect(res.status).toBe(403);
  });

  it('asks cookie-authenticated API writes for the X-CSRF-Token header', async () => {
    const c = clients.admin;
    const no = await c.request('POST', '/api/v1/tokens', { json: { name: 'cookie', role: 'viewer' } });
    expect(no.status).toBe(403);
    const page = await c.get('/staff/tokens');
    const yes = await c.request('POST', '/api/v1/tokens', { json: { name: 'cookie', role: 'viewer' }, headers: { 'x-csrf-token': Client.csrfFrom(page.text_) } });
    expect(yes.status).toBe(201);
  });
});

describe('sign-in', () => {
  it('throttles repeated failures for an e-mail, even with the right password afterwards', async () => {
    await makeUser(t.db, 'viewer', 'throttle@example.org');
    const c = new Client(t.url);
    for (let i = 0; i < 3; i++) expect((await c.login('throttle@example.org', 'wrong password!!')).status).toBe(401);
    const locked = await c.login('throttle@example.org');
    expect(locked.status).toBe(429);
  });

  it('signs out and the old session cookie no longer works', async () => {
    await makeUser(t.db, 'viewer', 'leaver@example.org');
    const c = new Client(t.url);
    await c.login('leaver@example.org');
    expect((await c.get('/')).status).toBe(200);
    const page = await c.get('/');
    await c.request('POST', '/logout', { form: { _csrf: Client.csrfFrom(page.text_) } });
    expect((await c.get('/')).status).toBe(302);
  });

  it('a deactivated user is signed out everywhere', async () => {
    const u = await makeUser(t.db, 'editor', 'gone@example.org');
    const c = new Client(t.url);
    await c.login('gone@example.org');
    expect((await c.get('/')).status).toBe(200);
    await clients.admin.submit('/staff/users', `/staff/users/${u.id}`, { active: 'false' });
    expect((await c.get('/')).status).toBe(302);
    expect((await c.login('gone@example.org')).status).toBe(401);
  });
});

describe('audit', () => {
  it('records staff actions with who, what and which record, and no secrets', async () => {
    const rows = await listAudit(t.db, { action: 'token.create' });
    expect(rows.length).toBeGreaterThan(0);
    const byAdmin = rows.find((r) => r.actorLabel === 'admin@example.org');
    expect(byAdmin).toMatchObject({ actorType: 'staff', entityType: 'api_token' });
    expect(JSON.stringify(rows)).not.toMatch(/ayni_[0-9a-f]{12}_/);
  });
});
