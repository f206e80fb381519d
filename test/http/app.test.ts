import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, Client, type TestApp } from '../helpers/app.js';
import { createLogger, maskPhone } from '../../src/log.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ BODY_LIMIT_KB: '4' });
});
afterAll(() => t?.close());

describe('HTTP basics', () => {
  it('serves an OpenAPI 3 document generated from the route schemas', async () => {
    const res = await new Client(t.url).get('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = JSON.parse(res.text_);
    expect(doc.openapi).toMatch(/^3\./);
    const create = doc.paths['/api/v1/staff/users'].post;
    expect(create.requestBody.content['application/json'].schema.properties.role.enum).toContain('focal_point');
    expect(doc.paths['/api/v1/tokens/{id}/revoke'].post.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
  });

  it('answers errors in the JSON envelope with a request id', async () => {
    const res = await new Client(t.url).get('/api/v1/nothing-here');
    expect(res.status).toBe(404);
    const body = JSON.parse(res.text_);
    expect(body.error.code).toBe('not_found');
    expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
    const anon = await new Client(t.url).get('/api/v1/staff/users');
    expect(anon.status).toBe(401);
    expect(JSON.parse(anon.text_).error.code).toBe('unauthorized');
  });

  it('refuses a body over the limit with 413', async () => {
    const res = await new Client(t.url).request('POST', '/api/v1/tokens', { json: { name: 'x'.repeat(10_000) } });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text_).error.code).toBe('payload_too_large');
  });

  it('sets security headers', async () => {
    const res = await new Client(t.url).get('/login');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBeTruthy();
  });

  it('renders console errors as pages, in Spanish when asked', async () => {
    const res = await new Client(t.url).get('/no-such-page', { accept: 'text/html', 'accept-language': 'es' });
    expect(res.status).toBe(404);
    expect(res.text_).toContain('Página no encontrada');
  });
});

describe('logs', () => {
  it('mask phone numbers, message text and secrets', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const log = createLogger('info', sink as never);
    log.info({ to: '+51987654321', text: 'mi dirección es…', password: 'hunter2hunter2', msg: { body: 'hola' }, contactId: 7 }, 'sent');
    const out = lines.join('');
    expect(out).not.toContain('987654321');
    expect(out).not.toContain('dirección');
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('hola');
    expect(out).toContain('"contactId":7');
    expect(maskPhone('+51987654321')).toBe('+51*******21');
  });
});

describe('database errors in logs', () => {
  it('carry neither the bound values nor the offending row', async () => {
    const { errorForLog } = await import('../../src/log.js');
    const now = new Date();
    const [c] = await t.db.knex('contacts').insert({ status: 'active', created_at: now, updated_at: now }).returning('id');
    const contactId = typeof c === 'object' ? c.id : c;
    const row = { contact_id: contactId, channel: 'sms', kind: 'phone', address: '+51987650001', created_at: now };
    await t.db.knex('contact_addresses').insert(row);
    let caught: unknown;
    try {
      await t.db.knex('contact_addresses').insert(row);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeDefined();
    expect(JSON.stringify(errorForLog(caught))).not.toContain('987650001');
    expect(String((caught as Error).message)).not.toContain('987650001');
  });
});
