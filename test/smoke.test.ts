import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, Client, makeUser, type TestApp } from './helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await makeUser(t.db, 'admin');
});
afterAll(() => t?.close());

describe('the service', () => {
  it('answers /healthz and /readyz', async () => {
    const c = new Client(t.url);
    expect((await c.get('/healthz')).status).toBe(200);
    const ready = await c.get('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text_)).toMatchObject({ database: 'ok' });
  });

  it('shows the console login to a signed-out visitor', async () => {
    const c = new Client(t.url);
    const home = await c.get('/');
    expect(home.status).toBe(302);
    expect(home.headers.get('location')).toMatch(/^\/login/);
    const login = await c.get('/login');
    expect(login.text_).toContain('name="password"');
  });

  it('signs in and shows the home page', async () => {
    const c = new Client(t.url);
    const res = await c.login('admin@example.org');
    expect(res.status).toBe(302);
    const home = await c.get('/');
    expect(home.status).toBe(200);
    expect(home.text_).toContain('Test admin');
  });
});
