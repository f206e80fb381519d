/** A running Ayni HTTP server on a test database, and a small client with a cookie jar. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { loadConfig, type Config } from '../../src/config.js';
import { createApp, type BuiltApp } from '../../src/http/app.js';
import { createLogger } from '../../src/log.js';
import type { Database } from '../../src/db/orm.js';
import { createUser } from '../../src/staff/service.js';
import { SYSTEM } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { openTestDatabase, type TestDatabase } from './db.js';

export interface TestApp {
  config: Config;
  db: Database;
  test: TestDatabase;
  built: BuiltApp;
  url: string;
  close(): Promise<void>;
}

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const { db, test, close } = await openTestDatabase();
  const config = loadConfig({ LOG_LEVEL: 'silent', NODE_ENV: 'test', DATABASE_URL: test.url, ...env });
  const log = createLogger('silent');
  const built = createApp({ config, db, log });
  const server: Server = await new Promise((resolve) => {
    const s = built.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    config: { ...config, PUBLIC_URL: url },
    db,
    test,
    built,
    url,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await close();
    },
  };
}

export const PASSWORD = 'correct horse battery staple';

export async function makeUser(db: Database, role: Role, email = `${role}@example.org`): Promise<{ id: number; email: string }> {
  const { user } = await createUser(db, SYSTEM, { email, name: `Test ${role}`, role, password: PASSWORD });
  return { id: user.id, email: user.email };
}

/** A browser-like client: keeps cookies, can read the CSRF token from a page. */
export class Client {
  private cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async request(method: string, path: string, opts: { form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response & { text_: string }> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(opts.form).toString();
    } else if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    const res = await fetch(this.base + path, { method, headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      if (!value || /expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text_ = await res.text();
    return Object.assign(res, { text_ });
  }

  get(path: string, headers?: Record<string, string>) {
    return this.request('GET', path, { headers });
  }

  /** The value of the first `_csrf` hidden field on a page. */
  static csrfFrom(html: string): string {
    const m = /name="_csrf" value="([^"]+)"/.exec(html);
    if (!m) throw new Error('no CSRF field on the page');
    return m[1];
  }

  async login(email: string, password = PASSWORD): Promise<Response & { text_: string }> {
    const page = await this.get('/login');
    return this.request('POST', '/login', { form: { _csrf: Client.csrfFrom(page.text_), email, password, next: '/' } });
  }

  /** Submits a console form: fetches `pagePath` for its CSRF token, then posts. */
  async submit(pagePath: string, action: string, form: Record<string, string>) {
    const page = await this.get(pagePath);
    return this.request('POST', action, { form: { _csrf: Client.csrfFrom(page.text_), ...form } });
  }
}
