import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError, parseDatabaseUrl } from '../../src/config.js';

describe('configuration', () => {
  it('start-up with DATABASE_URL=nonsense PORT=-1 exits 2 naming both, without a stack trace', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { PATH: process.env.PATH, DATABASE_URL: 'nonsense', PORT: '-1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines.some((l) => l.trim().startsWith('DATABASE_URL:'))).toBe(true);
    expect(lines.some((l) => l.trim().startsWith('PORT:'))).toBe(true);
    expect(r.stderr).not.toMatch(/\bat .+:\d+:\d+/); // no stack frames
  });

  it('has working defaults: SQLite under ./data and port 3000', () => {
    const c = loadConfig({});
    expect(c.DATABASE_URL).toEqual({ kind: 'sqlite', file: './data/ayni.sqlite' });
    expect(c.PORT).toBe(3000);
    expect(c.PUBLIC_URL).toBe('http://localhost:3000');
    expect(c.channels).toEqual({ whatsapp: false, twilio: false, africastalking: false });
  });

  it('reports one line per problem, each naming its variable', () => {
    try {
      loadConfig({ PORT: '70000', LOG_LEVEL: 'loud', RUN_SCHEDULER: 'maybe', DEFAULT_TIMEZONE: 'Mars/Olympus', PUBLIC_URL: 'ftp://x' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const names = (e as ConfigError).problems.map((p) => p.split(':')[0]).sort();
      expect(names).toEqual(['DEFAULT_TIMEZONE', 'LOG_LEVEL', 'PORT', 'PUBLIC_URL', 'RUN_SCHEDULER']);
    }
  });

  it('asks for the rest of a provider’s settings once one is given', () => {
    expect(() => loadConfig({ TWILIO_ACCOUNT_SID: 'AC123' })).toThrow(/TWILIO_AUTH_TOKEN: is required/);
    const c = loadConfig({ TWILIO_ACCOUNT_SID: 'AC123', TWILIO_AUTH_TOKEN: 'secret', TWILIO_FROM: '+15005550006' });
    expect(c.channels.twilio).toBe(true);
  });

  it('reads PostgreSQL and SQLite URLs', () => {
    expect(parseDatabaseUrl('postgres://postgres@127.0.0.1:5432/test')).toMatchObject({ kind: 'postgresql', dbName: 'test' });
    expect(parseDatabaseUrl('sqlite:/var/lib/ayni/ayni.sqlite')).toEqual({ kind: 'sqlite', file: '/var/lib/ayni/ayni.sqlite' });
    expect(parseDatabaseUrl('mysql://x/y')).toBeUndefined();
  });
});
