/**
 * Sealed at rest: the narrative, resolution and notes of a sensitive case, the intake in progress and
 * a triage note are not readable in the SQLite database file (read as raw bytes after a WAL
 * checkpoint) — while a non-sensitive narrative, as a control, is. Also: a value sealed for one record
 * does not open for another, and a wrong key fails with a clear error. (The raw-bytes check is
 * SQLite only; on PostgreSQL the same code seals the same columns.)
 */
import { readFileSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureComplaintsKey, generateKey, seal, unseal } from '../../src/complaints/crypto.js';
import { setTriage } from '../../src/complaints/pss.js';
import { addNote, changeStatus, type Viewer } from '../../src/complaints/service.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { ROLE_PERMISSIONS } from '../../src/staff/roles.js';
import { testDbKind } from '../helpers/db.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices({ PSS_EMERGENCY_NUMBERS: 'Emergencias 105' });
});
afterAll(() => s?.close());

let seq = 0;
const sms = (from: string, text: string): ParsedInbound => ({ channel: 'simulator', medium: 'sms', providerId: `rest-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date() });
const say = (from: string, text: string) => receive(s, ROUTER_STEPS, [sms(from, text)]);
const focal: Viewer = { actor: { type: 'staff', id: 1, label: 'focal@example.org', role: 'focal_point' }, permissions: ROLE_PERMISSIONS.focal_point };

describe('sealed at rest', () => {
  it.skipIf(testDbKind !== 'sqlite')('a sensitive narrative, resolution, note, open intake and triage note are not in the database file; a plain narrative is', async () => {
    // A sensitive case, filed by SMS.
    for (const t of ['QUEJA', '9', 'El coordinador ZORRO-MARKER-8812 nos insulta', '1', '2']) await say('+51987500001', t);
    const code = String((await s.db.knex('complaints').where('sensitive', true).first('code')).code);
    await addNote(s.db, focal, code, 'Entrevista NOTE-MARKER-5531 hecha');
    await changeStatus(s.db, focal, code, { status: 'resolved', resolution: 'Separamos al coordinador RESOLUTION-MARKER-9902' }, { programme: 'X', defaultLanguage: 'es' });
    // An intake still open, already told what happened.
    for (const t of ['QUEJA', '7', 'El INTAKE-MARKER-4471 me pidio favores']) await say('+51987500002', t);
    // A triage note.
    const contactId = Number((await s.db.knex('contact_addresses').where('address', '+51987500002').first('contact_id')).contact_id);
    await setTriage(s.db, s.config, focal, { contactId, level: 'yellow', note: 'Duerme mal TRIAGE-MARKER-6603' });
    // A plain (non-sensitive) case, as the control.
    for (const t of ['QUEJA', '4', 'El PLAIN-MARKER-1234 llego tarde', '2']) await say('+51987500003', t);

    await s.db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    const file = (s.config.DATABASE_URL as { file: string }).file;
    const bytes = Buffer.concat([readFileSync(file), existsSync(`${file}-wal`) ? readFileSync(`${file}-wal`) : Buffer.alloc(0)]);
    expect(bytes.includes('PLAIN-MARKER-1234')).toBe(true);
    for (const marker of ['ZORRO-MARKER-8812', 'NOTE-MARKER-5531', 'RESOLUTION-MARKER-9902', 'INTAKE-MARKER-4471', 'TRIAGE-MARKER-6603']) {
      expect(bytes.includes(marker), marker).toBe(false);
    }
  });

  it('a sealed value does not open for another record, altered, or with another key', () => {
    const sealed = seal('texto', 'complaint:AAAAAA:narrative');
    expect(unseal(sealed, 'complaint:AAAAAA:narrative')).toBe('texto');
    expect(() => unseal(sealed, 'complaint:CCCCCC:narrative')).toThrow(/does not open/);
    const parts = sealed.split('.');
    parts[4] = Buffer.from('otro').toString('base64url');
    expect(() => unseal(parts.join('.'), 'complaint:AAAAAA:narrative')).toThrow(/does not open/);
    configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: generateKey(), NODE_ENV: 'test' });
    try {
      expect(() => unseal(sealed, 'complaint:AAAAAA:narrative')).toThrow(/sealed with key [0-9a-f]{8}, but the configured key is [0-9a-f]{8}/);
    } finally {
      configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: undefined, NODE_ENV: 'test' });
    }
  });

  it('a case sealed with another key still opens as a page, saying why its text cannot be read', async () => {
    const { openComplaint, getComplaint } = await import('../../src/complaints/service.js');
    const opened = await s.db.knex.transaction((trx) => openComplaint(trx, { source: 'phone', category: 'misconduct', narrative: 'texto sellado' }));
    configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: generateKey(), NODE_ENV: 'test' });
    try {
      const c = await getComplaint(s.db, focal, opened.code);
      expect(c.category).toBe('misconduct');
      expect(c.narrative).toMatch(/^\[sealed text that cannot be opened: sealed with key [0-9a-f]{8}, but the configured key is [0-9a-f]{8}\]$/);
    } finally {
      configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: undefined, NODE_ENV: 'test' });
    }
    expect((await getComplaint(s.db, focal, opened.code)).narrative).toBe('texto sellado');
  });

  it('production refuses to start without COMPLAINTS_ENCRYPTION_KEY, and refuses a key that is not 32 bytes', async () => {
    const { loadConfig, ConfigError } = await import('../../src/config.js');
    const base = { NODE_ENV: 'production', PSEUDONYM_KEY: 'p'.repeat(40) };
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        return e.problems.filter((p) => p.startsWith('COMPLAINTS_ENCRYPTION_KEY'));
      }
    };
    expect(problems(base)).toHaveLength(1);
    expect(problems({ ...base, COMPLAINTS_ENCRYPTION_KEY: Buffer.alloc(16).toString('base64') })[0]).toMatch(/32 bytes/);
    expect(problems({ ...base, COMPLAINTS_ENCRYPTION_KEY: generateKey() })).toEqual([]);
    expect(() => configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: undefined, NODE_ENV: 'production' })).not.toThrow();
    try {
      expect(() => seal('x', 'y')).toThrow(/not configured/);
    } finally {
      configureComplaintsKey({ COMPLAINTS_ENCRYPTION_KEY: undefined, NODE_ENV: 'test' });
    }
  });
});
