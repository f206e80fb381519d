/**
 * The phone simulator, over HTTP as staff use it: a test contact joins a list on WhatsApp by tapping
 * the consent button, the real router and dispatcher answer through the simulator channel, the page
 * shows the answers (buttons as forms, SMS with segment counts) and reports them delivered/read;
 * the contact is marked as a test contact; a real contact's number, a bad number and a role without
 * the permission are refused and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { ensureDefaults } from '../../src/contacts/lists.js';
import { channelsFor } from '../../src/channels/index.js';
import { startDispatcher, type Dispatcher } from '../../src/messaging/dispatcher.js';
import { createLogger } from '../../src/log.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';

let t: TestApp;
let dispatcher: Dispatcher;
let editor: Client;
/** The configuration object the app runs with: the simulator's store is per configuration object (channelsFor). */
const appConfig = () => (t.built.app.context as unknown as { services: { config: TestApp['config'] } }).services.config;

const count = async (table: string) => Number((await t.db.knex(table).count({ n: '*' }))[0].n);
const until = async (check: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out');
};

beforeAll(async () => {
  t = await startTestApp({ DEFAULT_LANGUAGE: 'en' });
  await ensureDefaults(t.db, t.config);
  dispatcher = startDispatcher({ config: appConfig(), db: t.db, log: createLogger('silent'), adapters: channelsFor(appConfig()).all, pollMs: 20 });
  await makeUser(t.db, 'editor', 'sim-editor@example.org');
  editor = new Client(t.url);
  await editor.login('sim-editor@example.org');
});
afterAll(async () => {
  await dispatcher?.stop();
  await t?.close();
});

describe('phone simulator', () => {
  it('a test contact joins the default list on WhatsApp by tapping Yes; the answers come through the dispatcher', async () => {
    const sent = await editor.submit('/simulator', '/simulator/send', { number: '+51 999 000 001', medium: 'whatsapp', text: 'JOIN' });
    expect(sent.status).toBe(302);
    expect(sent.headers.get('location')).toBe('/simulator?number=%2B51%20999%20000%20001&medium=whatsapp#compose');

    const contactId = Number((await t.db.knex('contact_addresses').where({ channel: 'whatsapp', address: '+51999000001' }).first('contact_id')).contact_id);
    expect(await t.db.knex('simulator_contacts').where('contact_id', contactId).first()).toBeTruthy();
    const inbound = await t.db.knex('inbound_messages').where('contact_id', contactId).first();
    expect(inbound).toMatchObject({ channel: 'simulator', route: 'join-prompt' });

    // The dispatcher sends the consent question through the simulator's WhatsApp face.
    await until(async () => Boolean(await t.db.knex('outbox').where({ contact_id: contactId, status: 'sent', channel: 'simulator' }).first()));
    const page = await editor.get('/simulator?number=%2B51999000001&medium=whatsapp');
    expect(page.status).toBe(200);
    expect(page.text_).toContain('class="phone whatsapp"');
    expect(page.text_).toContain('<p class="body">JOIN</p>');
    const yes = /name="payload" value="([^"]+)"><input type="hidden" name="text" value="Yes">/.exec(page.text_);
    expect(yes).not.toBeNull();
    // Shown on the phone: reported read.
    await until(async () => Boolean(await t.db.knex('outbox').where({ contact_id: contactId, status: 'read' }).first()));

    const tap = await editor.submit('/simulator?number=%2B51999000001&medium=whatsapp', '/simulator/send', { number: '+51999000001', medium: 'whatsapp', tap: 'button', payload: yes![1], text: 'Yes' });
    expect(tap.status).toBe(302);
    const sub = await t.db.knex('subscriptions').where({ contact_id: contactId, status: 'active' }).first();
    expect(sub).toBeTruthy();
    const last = await t.db.knex('inbound_messages').where('contact_id', contactId).orderBy('id', 'desc').first();
    expect(last).toMatchObject({ kind: 'button', payload: yes![1], channel: 'simulator' });
    await until(async () => (await t.db.knex('outbox').where({ contact_id: contactId }).whereIn('status', ['queued', 'sending']).count({ n: '*' }))[0].n == 0);

    const thread = await editor.get('/simulator/thread?number=%2B51999000001&medium=whatsapp');
    expect(thread.status).toBe(200);
    expect(thread.text_).toMatch(/^<div data-version="[^"]+" data-pending="0">/);
    expect(thread.text_).not.toContain('<html');
    const audit = await t.db.knex('audit_events').where('action', 'simulator.message').orderBy('id');
    expect(audit).toHaveLength(2);
    expect(JSON.stringify(audit)).not.toContain('999000001');
  });

  it('renders SMS as text with numbered options and its segment count', async () => {
    const sent = await editor.submit('/simulator', '/simulator/send', { number: '+51999000002', medium: 'sms', text: 'JOIN' });
    expect(sent.status).toBe(302);
    // Wait until the dispatcher has sent the reply on the simulator channel, not only queued it.
    await until(async () => channelsFor(appConfig()).simulator.sms.sent('+51999000002').length > 0, 30_000);
    const page = await editor.get('/simulator?number=%2B51999000002&medium=sms');
    expect(page.text_).toContain('class="phone sms"');
    expect(page.text_).toMatch(/\d SMS segment\(s\), (GSM-7|UCS-2)/);
    expect(page.text_).not.toContain('name="payload"'); // no buttons on SMS
    const simulated = channelsFor(appConfig()).simulator.sms.sent('+51999000002');
    expect(simulated.length).toBeGreaterThan(0);
    expect(page.text_).toContain(simulated[0].text.split('\n')[0].replaceAll('"', '&quot;'));
  });

  it("refuses a real contact's number, a bad number and an empty message, and stores nothing", async () => {
    await receive({ config: t.config, db: t.db, log: createLogger('silent') }, ROUTER_STEPS, [
      { channel: 'twilio', medium: 'sms', providerId: 'real-1', from: '+51911400001', fromKind: 'phone', kind: 'text', text: 'hello', receivedAt: new Date() },
    ]);
    const before = await count('inbound_messages');
    const real = await editor.submit('/simulator', '/simulator/send', { number: '+51911400001', medium: 'whatsapp', text: 'JOIN' });
    expect(real.status).toBe(409);
    expect(real.text_).toContain('<strong>number</strong>');
    const open = await editor.get('/simulator?number=%2B51911400001&medium=sms');
    expect(open.status).toBe(409);
    expect(open.text_).not.toContain('hello');
    const bad = await editor.submit('/simulator', '/simulator/send', { number: '12ab', medium: 'sms', text: 'JOIN' });
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('<strong>number</strong>');
    const empty = await editor.submit('/simulator', '/simulator/send', { number: '+51999000003', medium: 'sms', text: '  ' });
    expect(empty.status).toBe(400);
    expect(empty.text_).toContain('<strong>text</strong>');
    expect(await count('inbound_messages')).toBe(before);
    expect(await t.db.knex('contact_addresses').where('address', '+51999000003').first()).toBeUndefined();
  });

  it('is refused to a viewer; the API works with a token', async () => {
    await makeUser(t.db, 'viewer', 'sim-viewer@example.org');
    const v = new Client(t.url);
    await v.login('sim-viewer@example.org');
    expect((await v.get('/simulator')).status).toBe(403);
    expect((await v.get('/dashboard')).text_).not.toContain('href="/simulator"');
    expect((await editor.get('/dashboard')).text_).toContain('href="/simulator"');

    const { secret } = await createToken(t.db, SYSTEM, { name: 'sim', role: 'editor' });
    const api = new Client(t.url);
    const auth = { authorization: `Bearer ${secret}` };
    const r = await api.request('POST', '/api/v1/simulator/messages', { headers: auth, json: { number: '+51999000004', medium: 'sms', text: 'HELP' } });
    expect(r.status).toBe(201);
    expect(JSON.parse(r.text_).data.route).toBe('help');
    await until(async () => {
      const c = await api.request('GET', '/api/v1/simulator/conversation?number=%2B51999000004&medium=sms', { headers: auth });
      const d = JSON.parse(c.text_).data;
      return d.messages.length >= 2 && d.messages[1].direction === 'out' && d.messages[1].status !== 'queued';
    });
    const { secret: vs } = await createToken(t.db, SYSTEM, { name: 'v', role: 'viewer' });
    expect((await api.request('POST', '/api/v1/simulator/messages', { headers: { authorization: `Bearer ${vs}` }, json: { number: '+51999000005', medium: 'sms', text: 'HELP' } })).status).toBe(403);
    const invalid = await api.request('POST', '/api/v1/simulator/messages', { headers: auth, json: { number: '+51999000005', medium: 'sms', payload: 'x' } });
    expect(invalid.status).toBe(400);
  });
});
