/** Segments over HTTP: the API (CRUD, live count, positioned errors, permissions, audit) and the console pages without scripts. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, Client, makeUser, type TestApp } from '../helpers/app.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM, listAudit } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';

let t: TestApp;

/** The page as a reader sees it: Handlebars escapes " = ' ` & < >. */
const unescape = (html: string) =>
  html.replace(/&quot;/g, '"').replace(/&#x3D;/g, '=').replace(/&#x27;/g, "'").replace(/&#x60;/g, '`').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const tokens: Record<string, string> = {};

async function api(role: string, method: string, path: string, json?: unknown) {
  const res = await fetch(`${t.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${tokens[role]}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

beforeAll(async () => {
  t = await startTestApp();
  for (const role of ['admin', 'broadcaster', 'viewer'] as const) {
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `t-${role}`, role })).secret;
    await makeUser(t.db, role);
  }
  const k = t.db.knex;
  const now = new Date();
  await k('contact_fields').insert({ key: 'region', label: 'Region', type: 'text', created_at: now });
  const [l] = await k('lists').insert({ key: 'migrants', name: 'Migrants', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now }).returning('id');
  const listId = toInt(typeof l === 'object' ? l.id : l);
  const people = [
    { language: 'es', region: 'Lima', list: true, status: 'active' },
    { language: 'es', region: 'Lima', list: false, status: 'active' },
    { language: 'es', region: 'Lima', list: true, status: 'stopped' },
    { language: 'en', region: 'Tumbes', list: true, status: 'active' },
  ];
  for (const p of people) {
    const [c] = await k('contacts').insert({ language: p.language, status: p.status, fields: JSON.stringify({ region: p.region }), created_at: now, updated_at: now }).returning('id');
    const id = toInt(typeof c === 'object' ? c.id : c);
    if (p.list) await k('subscriptions').insert({ list_id: listId, contact_id: id, status: 'active', joined_at: now });
  }
});
afterAll(() => t?.close());

describe('segments API', () => {
  it('counts query text live, with the active ones apart', async () => {
    const r = await api('admin', 'POST', '/segments/count', { query: 'language = "es" and region = "Lima"' });
    expect(r).toEqual({ status: 200, body: { total: 3, active: 2 } });
    expect((await api('admin', 'POST', '/segments/count', { query: '' })).body).toEqual({ total: 4, active: 3 });
  });

  it('answers a bad query with 400, the position and a suggestion', async () => {
    const r = await api('admin', 'POST', '/segments/count', { query: 'language = "es"\n  and regoin = "Lima"' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('segment_invalid');
    expect(r.body.error.message).toContain('line 2, column 7: unknown field "regoin"; did you mean "region"?');
    expect(r.body.error.details).toMatchObject({ position: { line: 2, column: 7, offset: 22, length: 6 }, suggestion: 'region', reason: 'unknown_field' });
    const syntax = await api('admin', 'POST', '/segments/count', { query: 'region = "Lima' });
    expect(syntax.body.error.details.position).toMatchObject({ line: 1, column: 10 });
    expect(syntax.body.error.details.reason).toBe('syntax');
  });

  it('lists what a query can use', async () => {
    const r = await api('broadcaster', 'GET', '/segments/fields');
    expect(r.status).toBe(200);
    expect(r.body.data.custom).toEqual([{ name: 'region', label: 'Region', type: 'text', choices: null }]);
    expect(r.body.data.lists).toEqual(['migrants']);
    expect(r.body.data.builtIn.map((b: { name: string }) => b.name)).toContain('last_seen');
  });

  it('creates, reads, changes and deletes saved segments, each audited', async () => {
    const created = await api('admin', 'POST', '/segments', { key: 'lima-es', name: 'Lima, Spanish', query: 'language = "es" and region = "Lima" and list = "migrants"' });
    expect(created.status).toBe(201);
    expect(created.body.count).toEqual({ total: 2, active: 1 });
    const id = created.body.data.id;

    expect((await api('admin', 'POST', '/segments', { key: 'lima-es', name: 'again', query: 'region = "Lima"' })).status).toBe(409);
    const bad = await api('admin', 'POST', '/segments', { key: 'broken', name: 'Broken', query: 'list = "migrnts"' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.suggestion).toBe('migrants');
    expect((await api('admin', 'POST', '/segments', { key: 'Bad Key', name: 'x', query: 'region = "Lima"' })).body.error.details).toHaveProperty('body.key');

    const list = await api('broadcaster', 'GET', '/segments');
    expect(list.body.total).toBe(1);
    expect(list.body.data[0]).toMatchObject({ key: 'lima-es', name: 'Lima, Spanish' });
    expect((await api('broadcaster', 'GET', `/segments/${id}`)).body.count).toEqual({ total: 2, active: 1 });

    const changed = await api('admin', 'PATCH', `/segments/${id}`, { query: 'region = "Lima"' });
    expect(changed.status).toBe(200);
    expect((await api('admin', 'GET', `/segments/${id}/count`)).body).toEqual({ total: 3, active: 2 });
    expect((await api('admin', 'PATCH', `/segments/${id}`, { query: 'region = ' })).status).toBe(400);
    expect((await api('admin', 'GET', `/segments/${id}`)).body.data.query).toBe('region = "Lima"');

    expect((await api('admin', 'DELETE', `/segments/${id}`)).status).toBe(204);
    expect((await api('admin', 'GET', `/segments/${id}`)).status).toBe(404);
    const actions = (await listAudit(t.db, { entityType: 'segment', entityId: String(id) })).map((a) => a.action).sort();
    expect(actions).toEqual(['segment.create', 'segment.delete', 'segment.update']);
  });

  it('lets broadcasters count but not save, and viewers neither', async () => {
    expect((await api('broadcaster', 'POST', '/segments/count', { query: 'region = "Lima"' })).status).toBe(200);
    expect((await api('broadcaster', 'POST', '/segments', { key: 'x', name: 'x', query: 'region = "Lima"' })).status).toBe(403);
    expect((await api('viewer', 'POST', '/segments/count', { query: 'region = "Lima"' })).status).toBe(403);
  });
});

describe('segments console', () => {
  it('counts, shows errors under the query box and saves — all with plain forms', async () => {
    const c = new Client(t.url);
    await c.login('admin@example.org');
    const page = await c.get('/segments');
    expect(page.status).toBe(200);
    expect(page.text_).toContain('<textarea id="segment-query" name="query"');
    expect(page.text_).toContain('<label for="segment-query">');
    expect(page.text_).toContain('src="/static/segments.js"');

    const counted = await c.submit('/segments', '/segments', { action: 'count', key: '', name: '', query: 'region = "Lima" and list = "migrants"' });
    expect(counted.status).toBe(200);
    expect(counted.text_).toContain('2 contacts match (1 active).');
    expect(unescape(counted.text_)).toContain('region = "Lima" and list = "migrants"</textarea>');

    const wrong = await c.submit('/segments', '/segments', { action: 'count', query: 'language = "es" and regoin = "Lima"' });
    expect(wrong.status).toBe(400);
    expect(wrong.text_).toContain('line 1, column 21: unknown field');
    expect(unescape(wrong.text_)).toMatch(/<pre class="query-caret"><code>language = "es" and regoin = "Lima"\n {20}\^{6}<\/code><\/pre>/);
    expect(wrong.text_).toContain('<code>region</code>');

    const saved = await c.submit('/segments', '/segments', { action: 'save', key: 'tumbes', name: 'Tumbes', query: 'region = "Tumbes"' });
    expect(saved.status).toBe(302);
    const location = saved.headers.get('location')!;
    expect(location).toMatch(/^\/segments\/\d+$/);
    const detail = await c.get(location);
    expect(detail.text_).toContain('1 contacts match (1 active).');
    expect(detail.text_).toContain('href="/exports?segment=tumbes"');

    const refused = await c.submit(location, location, { action: 'save', key: 'tumbes', name: 'Tumbes', query: 'region in ("Tumbes"' });
    expect(refused.status).toBe(400);
    expect(unescape(refused.text_)).toContain('expected "," or ")"');

    const del = await c.submit(location, `${location}/delete`, {});
    expect(del.status).toBe(302);
    expect((await c.get(location)).status).toBe(404);
  });

  it('gives staff without lists.manage a GET count form', async () => {
    const c = new Client(t.url);
    await c.login('broadcaster@example.org');
    const page = await c.get('/segments');
    expect(page.text_).toContain('<form method="get" action="/segments/count"');
    const counted = await c.get(`/segments/count?query=${encodeURIComponent('language = "en"')}`);
    expect(counted.status).toBe(200);
    expect(counted.text_).toContain('1 contacts match (1 active).');
    const viewer = new Client(t.url);
    await viewer.login('viewer@example.org');
    expect((await viewer.get('/segments')).status).toBe(403);
  });

  it('serves the live-count script', async () => {
    const res = await fetch(`${t.url}/static/segments.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect(await res.text()).toContain('/api/v1/segments/count');
  });
});
