/**
 * Dashboard figures: what people did in the period (messages in and out by channel, delivery and read
 * rates, people reached, subscriptions and opt-outs through the real JOIN/YES/STOP flow, survey
 * completions, complaints by category and service level, FAQ topics and rumours), with the phone
 * simulator's test contacts left out unless asked for, messages outside the period left out, and
 * sensitive complaints only as an anonymous total for roles that may not see them — on the page,
 * in the API, and without a number or name anywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { ensureDefaults } from '../../src/contacts/lists.js';
import { createFaq } from '../../src/broadcasts/faq.js';
import { approveMessage, createMessage, submitMessage } from '../../src/broadcasts/messages.js';
import { openComplaint } from '../../src/complaints/service.js';
import { ROLE_PERMISSIONS } from '../../src/staff/roles.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { createLogger } from '../../src/log.js';
import { simulatorSend } from '../../src/simulator/service.js';
import { dashboardFigures } from '../../src/reports/dashboard.js';
import { periodFrom } from '../../src/reports/period.js';
import { staff } from '../broadcasts/fixtures.js';

let t: TestApp;
let seq = 0;
const DAY = 86_400_000;
const viewer = { permissions: ROLE_PERMISSIONS.viewer };
const focal = { permissions: ROLE_PERMISSIONS.focal_point };

function msg(from: string, text: string, channel: 'whatsapp' | 'twilio', at = new Date()): ParsedInbound {
  seq++;
  return { channel, medium: channel === 'whatsapp' ? 'whatsapp' : 'sms', providerId: `dash-${seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: at };
}
const services = () => ({ config: t.config, db: t.db, log: createLogger('silent') });
const contactOf = async (phone: string) => Number((await t.db.knex('contact_addresses').where('address', phone).first('contact_id')).contact_id);

const A = '+51911200001'; // SMS: joins the default list
const B = '+51911200002'; // WhatsApp: asks the FAQ
const C = '+51911200003'; // SMS: joins, then STOP
const OLD = '+51911200004'; // wrote ten days ago only

beforeAll(async () => {
  t = await startTestApp({ DEFAULT_LANGUAGE: 'es', DEFAULT_TIMEZONE: 'America/Lima' });
  const s = services();
  await ensureDefaults(t.db, t.config);
  const st = await staff(t.db);
  const m = await createMessage(t.db, st.author, { key: 'vacunas', title: 'Vacunas gratuitas', topic: 'health', rumour: 'Que la vacuna cuesta dinero', variants: { es: { text: 'La vacuna es gratuita.' } }, media: null });
  await submitMessage(t.db, st.author, m.id);
  await approveMessage(t.db, st.reviewer, m.id);
  await createFaq(t.db, st.author, { messageId: m.id, keywords: { es: ['vacuna'] } });

  await receive(s, ROUTER_STEPS, [msg(A, 'UNIRSE', 'twilio')]);
  await receive(s, ROUTER_STEPS, [msg(A, 'SI', 'twilio')]);
  await receive(s, ROUTER_STEPS, [msg(B, '¿la vacuna cuesta?', 'whatsapp')]);
  await receive(s, ROUTER_STEPS, [msg(C, 'UNIRSE', 'twilio')]);
  await receive(s, ROUTER_STEPS, [msg(C, 'SI', 'twilio')]);
  await receive(s, ROUTER_STEPS, [msg(C, 'STOP', 'twilio')]);
  await receive(s, ROUTER_STEPS, [msg(OLD, 'hola', 'whatsapp', new Date(Date.now() - 10 * DAY))]);

  // A test contact of the phone simulator joins too.
  await simulatorSend(s, SYSTEM, { number: '+51999000001', medium: 'sms', text: 'UNIRSE' });
  await simulatorSend(s, SYSTEM, { number: '+51999000001', medium: 'sms', text: 'SI' });

  // What the providers reported: B's reply read on WhatsApp; A's first reply delivered by Twilio, the
  // second failed; C's replies sent. (The dispatcher is not running here: its outcome is set directly.)
  const knex = t.db.knex;
  const [a, b, c] = [await contactOf(A), await contactOf(B), await contactOf(C)];
  const aRows = await knex('outbox').where('contact_id', a).orderBy('id').pluck('id');
  await knex('outbox').where('id', aRows[0]).update({ status: 'delivered', channel: 'twilio', segments: 2 });
  await knex('outbox').whereIn('id', aRows.slice(1)).update({ status: 'failed', channel: 'twilio' });
  await knex('outbox').where('contact_id', b).update({ status: 'read', channel: 'whatsapp' });
  await knex('outbox').where('contact_id', c).update({ status: 'sent', channel: 'twilio', segments: 1 });

  // Complaints: a rumour and a question anyone may see, and a sensitive one.
  await knex.transaction(async (trx) => {
    await openComplaint(trx, { source: 'sms', category: 'rumour', narrative: 'Dicen que cobran', contactId: a });
    await openComplaint(trx, { source: 'web', category: 'question', narrative: '¿Cuándo?' });
    await openComplaint(trx, { source: 'web', category: 'sea', narrative: 'Sealed story' });
    await openComplaint(trx, { source: 'web', category: 'question', narrative: 'Old', receivedAt: new Date(Date.now() - 20 * DAY) });
  });

  // A completed survey session (the survey engine's own tests cover how one completes).
  const now = new Date();
  const [v] = await knex('survey_versions').insert({ survey_key: 'needs', version: 'v1', title: 'Necesidades', format: 'yaml', definition: JSON.stringify({}), created_at: now }).returning('id');
  const vid = typeof v === 'object' ? (v as { id: number }).id : v;
  await knex('survey_sessions').insert([
    { survey_version_id: vid, survey_key: 'needs', contact_id: a, medium: 'sms', language: 'es', status: 'completed', expiry_hours: 72, started_at: now, finished_at: now, created_at: now },
    { survey_version_id: vid, survey_key: 'needs', contact_id: b, medium: 'whatsapp', language: 'es', status: 'active', expiry_hours: 72, started_at: now, created_at: now },
  ]);
});
afterAll(() => t?.close());

describe('dashboard figures', () => {
  it('counts what real contacts did in the period, and leaves test contacts and older messages out', async () => {
    const period = periodFrom({}, 'America/Lima');
    const d = await dashboardFigures(t.db.knex, viewer, period);
    // A: UNIRSE, SI · B: one question · C: UNIRSE, SI, STOP. OLD wrote before the period; the test contact is left out.
    expect(d.inbound.total).toBe(6);
    expect(d.inbound.byChannel).toEqual({ twilio: 5, whatsapp: 1 });
    expect(d.inbound.people).toBe(3);
    expect(d.inbound.byRoute.faq).toBe(1);
    expect(d.testContacts).toBe(1);

    const bRows = Number((await t.db.knex('outbox').where('contact_id', await contactOf(B)).count({ n: '*' }))[0].n);
    expect(bRows).toBeGreaterThan(0); // the FAQ's answer, and whatever else a first message brings
    expect(d.outbound.byChannel.whatsapp).toMatchObject({ sent: bRows, delivered: bRows, read: bRows, failed: 0 });
    const tw = d.outbound.byChannel.twilio;
    expect(tw.sent).toBe(1 + (await t.db.knex('outbox').where('contact_id', await contactOf(C)).count({ n: '*' }).then((r) => Number(r[0].n))));
    expect(tw.delivered).toBe(1);
    expect(tw.failed).toBeGreaterThan(0);
    expect(d.outbound.peopleReached).toBe(3);
    expect(d.rates.byChannel.whatsapp).toEqual({ delivered: 100, read: 100 });
    expect(d.rates.byChannel.twilio.delivered).toBeCloseTo((100 * 1) / (tw.sent + tw.failed), 0);

    expect(d.subscriptions.joined).toBe(2);
    expect(d.subscriptions.optOuts).toBe(1);
    expect(d.subscriptions.ended).toEqual({ stop: 1 });
    expect(d.subscriptions.activeNow).toBe(1);
    expect(d.subscriptions.joinedPerDay.reduce((x, y) => x + y, 0)).toBe(2);
    expect(d.surveys).toMatchObject({ completed: 1, started: 2 });

    expect(d.topics.faqAnswered).toBe(1);
    expect(d.topics.topics).toEqual([{ topic: 'health', faq: 1, broadcast: 0 }]);
    expect(d.topics.rumours.map((r) => r.key)).toEqual(['vacunas']);
    // Every day of the period is there, and the days' counts add up to the totals.
    expect(d.period.days).toHaveLength(7);
    expect(d.inbound.perDay.reduce((x, y) => x + y, 0)).toBe(6);
  });

  it('includes the test contacts when asked', async () => {
    const d = await dashboardFigures(t.db.knex, viewer, periodFrom({}, 'America/Lima'), { includeTest: true });
    expect(d.inbound.total).toBe(8);
    expect(d.inbound.byChannel.simulator).toBe(2);
    expect(d.subscriptions.joined).toBe(3);
  });

  it('a longer period reaches the older messages and complaints', async () => {
    const to = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 30 * DAY).toISOString().slice(0, 10);
    const d = await dashboardFigures(t.db.knex, viewer, periodFrom({ from, to }, 'America/Lima'));
    expect(d.inbound.total).toBe(7);
    expect(d.complaints.received).toBe(3);
  });

  it('shows sensitive complaints only as an anonymous total to roles that may not see them', async () => {
    const d = await dashboardFigures(t.db.knex, viewer, periodFrom({}, 'America/Lima'));
    expect(d.complaints.received).toBe(2);
    expect(d.complaints.rumours).toBe(1);
    expect(d.complaints.byCategory).toMatchObject({ rumour: 1, question: 1 });
    expect(d.complaints.byCategory).not.toHaveProperty('sea');
    expect(d.complaints.sensitiveTotal).toBe(1);
    expect(Object.values(d.complaints.bySla).reduce((x, y) => x + y, 0)).toBe(2);

    const f = await dashboardFigures(t.db.knex, focal, periodFrom({}, 'America/Lima'));
    expect(f.complaints.received).toBe(3);
    expect(f.complaints.byCategory.sea).toBe(1);
    expect(f.complaints.sensitiveTotal).toBeNull();
  });
});

describe('dashboard page and API', () => {
  it('shows the figures to a viewer, with the numbers beside the charts and nothing personal', async () => {
    await makeUser(t.db, 'viewer', 'dash-viewer@example.org');
    const c = new Client(t.url);
    await c.login('dash-viewer@example.org');
    for (const path of ['/', '/dashboard']) {
      const page = await c.get(path);
      expect(page.status).toBe(200);
      expect(page.text_).toMatch(/data-kpi="received">6</);
      expect(page.text_).toMatch(/data-kpi="new-subscriptions">2</);
      expect(page.text_).toMatch(/data-kpi="opt-outs">1</);
      expect(page.text_).toMatch(/data-kpi="sensitive-total">[^<]*1/);
      expect(page.text_).not.toMatch(/data-category="sea"/);
      expect(page.text_).toContain('<canvas data-chart=');
      expect(page.text_).toContain('src="/static/dashboard-charts.js"');
      for (const secret of ['911200001', '999000001', 'Dicen que cobran', 'Sealed story']) expect(page.text_).not.toContain(secret);
    }
    const withTest = await c.get('/dashboard?test=1');
    expect(withTest.text_).toMatch(/data-kpi="received">8</);
    expect((await c.get('/static/dashboard-charts.js')).status).toBe(200);
    expect((await c.get('/static/chart.umd.js')).status).toBe(200);
  });

  it('refuses a bad period, naming the field', async () => {
    const c = new Client(t.url);
    await makeUser(t.db, 'editor', 'dash-editor@example.org');
    await c.login('dash-editor@example.org');
    const bad = await c.get('/dashboard?from=2026-02-30&to=2026-03-01');
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('<strong>from</strong>');
    const reversed = await c.get('/dashboard?from=2026-03-10&to=2026-03-01');
    expect(reversed.status).toBe(400);
    expect(reversed.text_).toContain('<strong>to</strong>');
    const api = await c.get('/api/v1/reports/dashboard?from=2026-03-10&to=2026-03-01');
    expect(api.status).toBe(400);
    expect(JSON.parse(api.text_).error.details).toHaveProperty('to');
  });

  it('serves the same figures in the API, and the focal point sees the sensitive category', async () => {
    await makeUser(t.db, 'focal_point', 'dash-focal@example.org');
    const c = new Client(t.url);
    await c.login('dash-focal@example.org');
    const res = await c.get('/api/v1/reports/dashboard');
    expect(res.status).toBe(200);
    const d = JSON.parse(res.text_).data;
    expect(d.inbound.total).toBe(6);
    expect(d.complaints.byCategory.sea).toBe(1);
    expect(d.complaints.sensitiveTotal).toBeNull();
    const anon = new Client(t.url);
    expect((await anon.get('/api/v1/reports/dashboard')).status).toBe(401);
  });
});
