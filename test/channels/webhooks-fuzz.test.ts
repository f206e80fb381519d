/**
 * 1,000 random or mutated bodies per provider against the real app: each must get a 4xx or a
 * 2xx, never a 5xx, and the app must still work afterwards. Most mutated bodies are signed
 * correctly, so that they reach the parsers and the database (with SQLite and PostgreSQL).
 * The generator is seeded: a failure names the case and its seed can be replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { FAKE_CREDENTIALS, fakeEnv } from '../helpers/fake-provider.js';
import { fixture, fixtureNames, metaSignature, signTwilio } from './helpers.js';
import { toInt } from '../../src/db/values.js';

const PUBLIC = 'https://ayni.example.org';
const ENV = { ...fakeEnv('http://127.0.0.1:9'), PUBLIC_URL: PUBLIC, BODY_LIMIT_KB: '256' };
const PER_PROVIDER = 1000;

let app: TestApp;
let pool: Pool;
beforeAll(async () => {
  app = await startTestApp(ENV);
  pool = new Pool(app.url, { connections: 8 });
});
afterAll(async () => {
  await pool?.close();
  await app?.close();
});

class Rand {
  constructor(private seed: number) {}
  next(): number {
    this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff;
    return this.seed / 0x7fffffff;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const NASTY_STRINGS = ['', ' ', '\u0000', 'a\u0000b', '😀', '\ud800', '\udfff', 'é'.repeat(300), 'x'.repeat(70_000), '<script>', "' OR 1=1 --", '%00', '../../etc/passwd', '\n\r\t', '+', '+0', '+999999999999999999', '51987654321', 'US.1', 'PE.90231847561029384', '-1', '1e309', 'null', 'true', '{}', '[]'];

function randomValue(r: Rand, depth = 0): unknown {
  switch (r.int(12)) {
    case 0: return null;
    case 1: return r.pick([0, -1, 1.5, 1e21, Number.MAX_SAFE_INTEGER, 131047, 1749416383]);
    case 2: return r.chance(0.5);
    case 3: return r.pick(NASTY_STRINGS);
    case 4: return depth > 3 ? [] : Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    case 5: return depth > 3 ? {} : Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(['id', 'from', 'type', 'text', 'body', 'status', 'errors', 'code', 'timestamp', 'messages', 'statuses', 'value', 'changes']), randomValue(r, depth + 1)]));
    case 6: return String(r.int(1e9));
    case 7: return 'wamid.' + r.int(1e9);
    case 8: return r.pick(['text', 'interactive', 'button', 'image', 'reaction', 'system', 'location', 'unknown_type', 'sent', 'delivered', 'read', 'failed', 'deleted']);
    case 9: return { body: r.pick(NASTY_STRINGS) };
    case 10: return Array.from({ length: 1 + r.int(300) }, () => ({ id: 'wamid.M' + r.int(1e6), from: '5198' + (1000000 + r.int(8999999)), type: 'text', text: { body: 'x' }, timestamp: '1749416383' }));
    default: return r.pick(NASTY_STRINGS).repeat(r.int(3));
  }
}

/** Walks to a random node of a JSON tree and mutates it. */
function mutateJson(r: Rand, v: unknown, depth = 0): unknown {
  if (Array.isArray(v)) {
    if (v.length === 0 || r.chance(0.15)) return r.chance(0.5) ? randomValue(r) : [...v, randomValue(r)];
    const i = r.int(v.length);
    const copy = [...v];
    if (r.chance(0.1)) copy.splice(i, 1);
    else if (r.chance(0.1)) copy.push(copy[i], copy[i]);
    else copy[i] = mutateJson(r, copy[i], depth + 1);
    return copy;
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0 || r.chance(0.15)) return r.chance(0.5) ? randomValue(r) : { ...v, [r.pick(['extra', 'id', 'type'])]: randomValue(r) };
    const k = r.pick(keys);
    const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    if (r.chance(0.25)) delete copy[k];
    else copy[k] = mutateJson(r, copy[k], depth + 1);
    return copy;
  }
  return randomValue(r);
}

/** Keeps the structure and replaces one leaf (a string, number or boolean) with a nasty value. */
function mutateLeaf(r: Rand, v: unknown): unknown {
  if (Array.isArray(v)) {
    if (v.length === 0) return v;
    const copy = [...v];
    const i = r.int(copy.length);
    copy[i] = mutateLeaf(r, copy[i]);
    return copy;
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0) return v;
    const k = r.pick(keys);
    return { ...(v as Record<string, unknown>), [k]: mutateLeaf(r, (v as Record<string, unknown>)[k]) };
  }
  return r.chance(0.8) ? r.pick(NASTY_STRINGS) : randomValue(r);
}

function mutateRaw(r: Rand, raw: string): string {
  switch (r.int(6)) {
    case 0: return raw.slice(0, r.int(raw.length));
    case 1: return raw.slice(0, r.int(raw.length)) + String.fromCharCode(r.int(0xffff)) + raw.slice(r.int(raw.length));
    case 2: return Array.from({ length: r.int(400) }, () => String.fromCharCode(r.int(256))).join('');
    case 3: return raw + raw;
    case 4: return raw.replace(/[{}[\]"=&]/, '');
    default: return '';
  }
}

interface Attempt {
  path: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string | Buffer;
  label: string;
}

const CONTENT_TYPES = ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/json; charset=latin1', 'application/x-www-form-urlencoded; charset=utf-16'];

/** encodeURIComponent, but a lone surrogate becomes the invalid UTF-8 bytes a client might send. */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return '%ED%A0%80';
  }
}

function whatsappAttempt(r: Rand, files: string[]): Attempt {
  let raw: string;
  const base = fixture('whatsapp', r.pick(files));
  const mode = r.int(10);
  if (mode < 3) raw = JSON.stringify(mutateLeaf(r, mutateLeaf(r, JSON.parse(base))));
  else if (mode < 6) raw = JSON.stringify(mutateJson(r, mutateJson(r, JSON.parse(base))));
  else if (mode < 8) raw = mutateRaw(r, base);
  else raw = JSON.stringify(randomValue(r));
  if (r.chance(0.02)) raw = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ changes: [{ field: 'messages', value: { messages: [{ id: 'wamid.big', from: '51987654321', type: 'text', text: { body: 'x'.repeat(300_000) } }] } }] }] });
  const sig = r.chance(0.85) ? metaSignature(FAKE_ENV.WHATSAPP_APP_SECRET, raw) : r.pick(['', 'sha256=', 'sha256=' + '0'.repeat(64), metaSignature('wrong', raw), 'garbage', 'sha256=zz']);
  const headers: Record<string, string> = { 'content-type': r.chance(0.9) ? 'application/json' : r.pick(CONTENT_TYPES) };
  if (sig) headers['x-hub-signature-256'] = sig;
  if (r.chance(0.03)) return { path: `/webhooks/whatsapp?hub.mode=${r.pick(['subscribe', 'x', ''])}&hub.verify_token=${enc(r.pick(NASTY_STRINGS))}&hub.challenge=${enc(r.pick(NASTY_STRINGS))}`, method: 'GET', headers: {}, label: 'GET verify' };
  return { path: '/webhooks/whatsapp', method: 'POST', headers, body: raw, label: raw.slice(0, 200) };
}

function mutateForm(r: Rand, raw: string): string {
  const pairs = [...new URLSearchParams(raw)];
  const n = 1 + r.int(3);
  for (let k = 0; k < n; k++) {
    const op = r.int(5);
    if (op === 0 && pairs.length) pairs.splice(r.int(pairs.length), 1);
    else if (op === 1 && pairs.length) pairs[r.int(pairs.length)][1] = String(r.pick(NASTY_STRINGS));
    else if (op === 2) pairs.push([r.pick(['MessageSid', 'From', 'Body', 'NumMedia', 'MessageStatus', 'ErrorCode', 'id', 'from', 'text', 'status', 'failureReason', 'date', 'Extra', 'a[b]', '__proto__', 'constructor']), String(r.pick(NASTY_STRINGS))]);
    else if (op === 3 && pairs.length) pairs.push(pairs[r.int(pairs.length)]);
    else if (pairs.length) pairs[r.int(pairs.length)][1] = r.pick(['-1', '99999999999', '1.5', 'NaN', 'undelivered', 'failed', 'read', 'Success', 'Rejected', '2026-99-99 99:99:99', '0001-01-01 00:00:00', '-271821-04-20T00:00:00Z']);
  }
  return new URLSearchParams(pairs).toString();
}

function twilioAttempt(r: Rand, files: string[]): Attempt {
  const file = r.pick(files);
  const path = r.chance(0.5) ? '/webhooks/twilio' : '/webhooks/twilio/status';
  const base = fixture('twilio', file);
  const mode = r.int(10);
  const raw = mode < 7 ? mutateForm(r, base) : mode < 9 ? mutateRaw(r, base) : '%E0%A4%A&%%%=&==&' + r.pick(NASTY_STRINGS);
  const headers: Record<string, string> = { 'content-type': r.chance(0.9) ? 'application/x-www-form-urlencoded' : r.pick(CONTENT_TYPES) };
  if (r.chance(0.85)) {
    try {
      headers['x-twilio-signature'] = signTwilio(FAKE_CREDENTIALS.twilioAuthToken, PUBLIC + path, raw);
    } catch {
      headers['x-twilio-signature'] = 'x';
    }
  } else if (r.chance(0.5)) headers['x-twilio-signature'] = r.pick(['', 'AAAA', 'x'.repeat(500)]);
  return { path, method: 'POST', headers, body: raw, label: `${path} ${raw.slice(0, 200)}` };
}

function atAttempt(r: Rand, files: string[]): Attempt {
  const file = r.pick(files);
  const kind = file.startsWith('inbound') ? 'inbound' : 'delivery';
  const secret = r.chance(0.85) ? FAKE_ENV.AFRICASTALKING_WEBHOOK_SECRET : r.pick(['x', '', '%', '%E0', FAKE_ENV.AFRICASTALKING_WEBHOOK_SECRET + 'x', '..']);
  const base = fixture('africastalking', file);
  const mode = r.int(10);
  const raw = mode < 7 ? mutateForm(r, base) : mode < 8 ? JSON.stringify(mutateJson(r, Object.fromEntries(new URLSearchParams(base)))) : mutateRaw(r, base);
  const ct = raw.startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded';
  return { path: `/webhooks/africastalking/${secret}/${r.chance(0.9) ? kind : r.pick(['inbound', 'delivery', 'other'])}`, method: 'POST', headers: { 'content-type': r.chance(0.9) ? ct : r.pick(CONTENT_TYPES) }, body: raw, label: raw.slice(0, 200) };
}

const FAKE_ENV = ENV;

async function run(make: (r: Rand) => Attempt, seed: number): Promise<{ statuses: Map<number, number>; failures: string[] }> {
  const r = new Rand(seed);
  const attempts = Array.from({ length: PER_PROVIDER }, () => make(r));
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < attempts.length) {
        const i = next++;
        const a = attempts[i];
        try {
          const res = await pool.request({ path: a.path, method: a.method, headers: a.headers, body: a.body });
          await res.body.text();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode >= 500 || (res.statusCode >= 300 && res.statusCode < 400)) failures.push(`#${i} (seed ${seed}) ${res.statusCode} ${a.method} ${a.path} ${JSON.stringify(a.headers)} ${a.label}`);
        } catch (err) {
          failures.push(`#${i} (seed ${seed}) transport error ${(err as Error).message} ${a.path}`);
        }
      }
    }),
  );
  return { statuses, failures };
}

async function stillWorks(): Promise<void> {
  const health = await pool.request({ path: '/healthz', method: 'GET' });
  expect(health.statusCode).toBe(200);
  await health.body.text();
  const raw = fixture('whatsapp', 'text.json').replace(/wamid\.[^"]+/, 'wamid.AFTER.FUZZ.' + Math.random());
  const res = await pool.request({ path: '/webhooks/whatsapp', method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature(ENV.WHATSAPP_APP_SECRET, raw) }, body: raw });
  await res.body.text();
  expect(res.statusCode).toBe(200);
}

describe('webhooks never answer 5xx, whatever the body', () => {
  it.each([
    ['whatsapp', (r: Rand) => whatsappAttempt(r, fixtureNames('whatsapp')), 101],
    ['twilio', (r: Rand) => twilioAttempt(r, fixtureNames('twilio')), 202],
    ['africastalking', (r: Rand) => atAttempt(r, fixtureNames('africastalking')), 303],
  ] as const)('%s: 1,000 mutated and random bodies', async (_name, make, seed) => {
    const before = toInt((await app.db.knex('inbound_messages').count({ n: '*' }).first())?.n);
    const { statuses, failures } = await run(make, seed);
    expect(failures).toEqual([]);
    if (process.env.FUZZ_STATS) console.log(_name, Object.fromEntries([...statuses].sort()));
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(PER_PROVIDER);
    // The mutations reach past the signature check: some are stored, some refused as malformed.
    const ok = [...statuses].filter(([s]) => s < 300).reduce((a, [, n]) => a + n, 0);
    expect(ok).toBeGreaterThan(50);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(10);
    expect(statuses.get(401) ?? 0).toBeGreaterThan(10);
    const after = toInt((await app.db.knex('inbound_messages').count({ n: '*' }).first())?.n);
    expect(after).toBeGreaterThanOrEqual(before);
    await stillWorks();
  });
});
