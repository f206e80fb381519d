/**
 * Complaints over SMS and WhatsApp through the real router: the intake conversation, the
 * acknowledgement with the code, STATUS from the right and the wrong number, the resolution reaching
 * the person through the dispatcher, anonymity (no number kept, none protected from retention), the
 * erasure of the conversation's text, and escalation on a simulated clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { runComplaintsJob } from '../../src/complaints/sla.js';
import { changeStatus, getComplaint, type Viewer } from '../../src/complaints/service.js';
import { normaliseCode } from '../../src/complaints/model.js';
import { parseComplaintCommand } from '../../src/complaints/intake.js';
import { consentHistory, hasConsent } from '../../src/contacts/consent.js';
import { runRetention } from '../../src/contacts/retention.js';
import { toBool, toDate, toInt } from '../../src/db/values.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { receive } from '../../src/messaging/inbound.js';
import { outboxFor } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { ROLE_PERMISSIONS } from '../../src/staff/roles.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
let channels: ChannelRegistry;
beforeAll(async () => {
  s = await testServices({ PROGRAMME_NAME: 'Cruz Roja Lima' });
  channels = buildChannels(s.config);
});
afterAll(async () => {
  await channels?.close();
  await s?.close();
});

let seq = 0;
const sms = (from: string, text: string, receivedAt = new Date()): ParsedInbound => ({
  channel: 'simulator', medium: 'sms', providerId: `sim-c-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt,
});
const say = async (from: string, text: string, at?: Date) => (await receive(s, ROUTER_STEPS, [sms(from, text, at)])).routes[0];

async function contactOf(address: string): Promise<number> {
  const row = await s.db.knex('contact_addresses').where('address', address).first('contact_id');
  return toInt(row.contact_id);
}
async function lastText(address: string): Promise<string> {
  const out = await outboxFor(s.db.knex, await contactOf(address));
  const c = out[out.length - 1].content;
  return c && 'text' in c ? c.text : '';
}
const handler: Viewer = { actor: { type: 'staff', id: 1, label: 'handler@example.org', role: 'complaints' }, permissions: ROLE_PERMISSIONS.complaints };

/** Files a complaint over SMS: keyword, category, what happened, keep number?, answer?, channel. */
async function fileBySms(phone: string, o: { category: string; narrative: string; keep: boolean; answer?: boolean }): Promise<string> {
  expect(await say(phone, 'QUEJA')).toBe('complaint');
  expect(await lastText(phone)).toContain('Responda 1-10');
  expect(await say(phone, o.category)).toBe('complaint');
  expect(await say(phone, o.narrative)).toBe('complaint');
  expect(await say(phone, o.keep ? '1' : '2')).toBe('complaint');
  if (o.keep) {
    await say(phone, o.answer ? '1' : '2');
    if (o.answer) await say(phone, '2'); // by SMS
  }
  const ack = await lastText(phone);
  const m = /código es ([A-Z0-9]{6})/.exec(ack);
  expect(m, ack).not.toBeNull();
  return m![1];
}

describe('keywords', () => {
  it('reads intake and STATUS commands, and leaves other sentences alone', () => {
    expect(parseComplaintCommand('queja')).toMatchObject({ kind: 'intake', lang: 'es', rest: '' });
    expect(parseComplaintCommand('Reclamação')).toMatchObject({ kind: 'intake', lang: 'pt' });
    expect(parseComplaintCommand('FEEDBACK: the water is dirty')).toMatchObject({ kind: 'intake', lang: 'en', rest: 'the water is dirty' });
    expect(parseComplaintCommand('status k7q-x3m')).toMatchObject({ kind: 'status', code: 'K7QX3M' });
    expect(parseComplaintCommand('ESTADO')).toMatchObject({ kind: 'status', code: null });
    expect(parseComplaintCommand('status of my payment please')).toBeNull();
    expect(parseComplaintCommand('hola, tengo una queja')).toBeNull();
    expect(normaliseCode('K7QX3O')).toBeNull(); // O is not in the alphabet
  });
});

describe('a complaint by SMS', () => {
  const phone = '+51987100001';
  let code = '';

  it('is acknowledged with its code, and keeps what the person agreed to', async () => {
    code = await fileBySms(phone, { category: '4', narrative: 'El reparto del sábado llegó tarde y faltaban kits de higiene', keep: true, answer: true });
    expect(code).toMatch(/^[ACDEFGHJKLMNPQRTUVWXY3479]{6}$/);
    const ack = await lastText(phone);
    expect(ack).toContain('Cruz Roja Lima');
    expect(ack).toContain(`ESTADO ${code}`);
    const row = await s.db.knex('complaints').where('code', code).first();
    expect(row.category).toBe('programme');
    expect(toBool(row.sensitive)).toBe(false);
    expect(row.narrative).toBe('El reparto del sábado llegó tarde y faltaban kits de higiene');
    expect(toInt(row.contact_id)).toBe(await contactOf(phone));
    expect(toBool(row.wants_answer)).toBe(true);
    expect(row.reply_medium).toBe('sms');
    expect(row.priority).toBe('medium');
    expect(row.status).toBe('new');
    // The consent to be answered is in the ledger, with the wording version and the message that gave it.
    const contactId = await contactOf(phone);
    expect(await hasConsent(s.db.knex, contactId, 'complaint_followup')).toBe(true);
    const [grant] = (await consentHistory(s.db.knex, contactId)).filter((c) => c.purpose === 'complaint_followup');
    expect(grant).toMatchObject({ action: 'grant', channel: 'sms', method: 'keyword', wordingKey: 'survey:complaint-intake:wants_answer', evidenceType: 'inbound_message' });
  });

  it('leaves no text of the conversation in inbound_messages', async () => {
    const rows = await s.db.knex('inbound_messages').where('contact_id', await contactOf(phone));
    expect(rows.length).toBe(6);
    for (const r of rows) {
      expect(r.text).toBeNull();
      expect(toBool(r.keep)).toBe(false);
      expect(r.route).toBe('complaint');
    }
  });

  it('STATUS <code> from the same number says where the case stands', async () => {
    expect(await say(phone, `status ${code.toLowerCase()}`)).toBe('complaint-status');
    const text = await lastText(phone);
    expect(text).toContain(code);
    expect(text).toMatch(/recibido, aún sin revisar/);
  });

  it('STATUS <code> from another number learns nothing: the same answer as for a code nobody used', async () => {
    const other = '+51987100099';
    await say(other, `ESTADO ${code}`);
    const forReal = (await lastText(other)).replace(code, 'CODE');
    await say(other, 'ESTADO AAAAAA');
    const forNothing = (await lastText(other)).replace('AAAAAA', 'CODE');
    expect(forReal).toBe(forNothing);
    expect(forReal).toContain('No encontramos');
    expect(forReal).not.toMatch(/revisar|curso|resuelto/);
  });

  it('the resolution reaches the person through the dispatcher, and the STATUS answer follows', async () => {
    await changeStatus(s.db, handler, code, { status: 'acknowledged' }, { programme: 'Cruz Roja Lima', defaultLanguage: 'es' });
    const r = await changeStatus(s.db, handler, code, { status: 'resolved', resolution: 'El próximo reparto incluye los kits que faltaron, el martes 10.' }, { programme: 'Cruz Roja Lima', defaultLanguage: 'es' });
    expect(r.followup).toBe('sent');
    const out = await outboxFor(s.db.knex, await contactOf(phone));
    const followup = out.find((o) => o.purpose === 'complaint_followup')!;
    expect(followup.status).toBe('queued');
    const d = new Dispatcher({ db: s.db, config: s.config, log: createLogger('silent'), adapters: channels.all, pollMs: 10 });
    await d.runUntilIdle();
    const got = channels.simulator.store.sent('sms', phone).map((m) => m.text);
    expect(got.some((t) => t.includes(`caso ${code}`) && t.includes('el martes 10'))).toBe(true);
    await say(phone, `ESTADO ${code}`);
    expect(await lastText(phone)).toContain('resuelto');
    // The outbox rows naming the case lose their content once sent.
    await d.runUntilIdle();
    await runComplaintsJob(s.db, s.config);
    const after = await outboxFor(s.db.knex, await contactOf(phone));
    expect(after.find((o) => o.id === followup.id)!.content).toBeNull();
  });

  it('no consent, no answer: withdrawing complaint_followup stops the resolution', async () => {
    const p2 = '+51987100002';
    const c2 = await fileBySms(p2, { category: '2', narrative: '¿Cuándo es el próximo reparto en Comas?', keep: true, answer: true });
    const contactId = await contactOf(p2);
    const { recordConsent } = await import('../../src/contacts/consent.js');
    await recordConsent(s.db.knex, { contactId, purpose: 'complaint_followup', action: 'withdraw', method: 'keyword', channel: 'sms', evidence: { type: 'inbound_message', ref: '1' } });
    await changeStatus(s.db, handler, c2, { status: 'in_progress' }, { programme: 'X', defaultLanguage: 'es' });
    const r = await changeStatus(s.db, handler, c2, { status: 'resolved', resolution: 'El jueves.' }, { programme: 'X', defaultLanguage: 'es' });
    expect(r.followup).toBe('no_consent');
    expect((await outboxFor(s.db.knex, contactId)).some((o) => o.purpose === 'complaint_followup')).toBe(false);
  });

  it('refuses a move the workflow does not allow, and a resolution without text', async () => {
    await expect(changeStatus(s.db, handler, code, { status: 'new' }, { programme: 'X', defaultLanguage: 'es' })).rejects.toMatchObject({ status: 409, code: 'invalid_transition' });
    const p3 = '+51987100003';
    const c3 = await fileBySms(p3, { category: '5', narrative: 'Podrían avisar por radio también', keep: false });
    await expect(changeStatus(s.db, handler, c3, { status: 'resolved' }, { programme: 'X', defaultLanguage: 'es' })).rejects.toMatchObject({ status: 400, details: { resolution: expect.any(String) } });
    await expect(changeStatus(s.db, handler, c3, { status: 'closed' }, { programme: 'X', defaultLanguage: 'es' })).rejects.toMatchObject({ status: 400, details: { note: expect.any(String) } });
    const row = await s.db.knex('complaints').where('code', c3).first('status');
    expect(row.status).toBe('new');
  });
});

describe('an anonymous complaint', () => {
  const phone = '+51987200001';
  let code = '';

  it('keeps no number, no contact and no address with the case', async () => {
    code = await fileBySms(phone, { category: '6', narrative: 'Dicen que hay que pagar 20 soles para entrar en la lista', keep: false });
    expect(await lastText(phone)).toContain('anónimo');
    const row = await s.db.knex('complaints').where('code', code).first();
    expect(row.contact_id).toBeNull();
    expect(row.address_id).toBeNull();
    expect(toBool(row.anonymous)).toBe(true);
    expect(toBool(row.wants_answer)).toBe(false);
    expect(row.requester_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain('987200001');
    // Words about paying make it a suggestion for staff, not a sensitive case: the person chose "rumour".
    expect(toBool(row.sensitive)).toBe(false);
    expect(toBool(row.suggested_sensitive)).toBe(true);
  });

  it('STATUS still works from the same phone (a keyed hash, not the number)', async () => {
    await say(phone, `STATUS ${code}`);
    expect(await lastText(phone)).toContain(code);
    expect(await lastText(phone)).toMatch(/received, not yet reviewed|recibido/);
  });

  it('does not hold the contact back from retention: their number is erased on schedule, the case stays', async () => {
    const known = '+51987100001'; // filed a non-anonymous case above: an open case keeps the number
    const contactId = await contactOf(phone);
    const later = new Date(Date.now() + 8 * 86_400_000);
    await runRetention(s.db, s.config, { now: later, vacuum: false });
    expect(await s.db.knex('contact_addresses').where('contact_id', contactId).first()).toBeUndefined();
    expect(await s.db.knex('contact_addresses').where('address', known).first()).toBeDefined();
    const row = await s.db.knex('complaints').where('code', code).first('id', 'narrative');
    expect(row.narrative).toContain('pagar 20 soles');
  });
});

describe('sensitive over WhatsApp-like SMS', () => {
  it('a sensitive category seals the narrative and keeps it out of inbound_messages', async () => {
    const phone = '+51987300001';
    const narrative = 'El promotor de la distribucion me pidio favores a cambio de la tarjeta';
    const code = await fileBySms(phone, { category: '7', narrative, keep: true, answer: false });
    const row = await s.db.knex('complaints').where('code', code).first();
    expect(toBool(row.sensitive)).toBe(true);
    expect(row.priority).toBe('high');
    expect(row.narrative).toMatch(/^v1\./);
    expect(row.narrative).not.toContain('favores');
    const texts = await s.db.knex('inbound_messages').whereNotNull('text').pluck('text');
    expect(texts.join('\n')).not.toContain('favores');
    const intakes = await s.db.knex('complaint_intakes').select('state');
    for (const i of intakes) expect(String(i.state)).not.toContain('favores');
    const focal: Viewer = { actor: { type: 'staff', id: 2, label: 'focal@example.org', role: 'focal_point' }, permissions: ROLE_PERMISSIONS.focal_point };
    expect((await getComplaint(s.db, focal, code)).narrative).toBe(narrative);
    await expect(getComplaint(s.db, handler, code)).rejects.toMatchObject({ status: 404 });
  });

  it('while the intake runs, its state is sealed too', async () => {
    const phone = '+51987300002';
    await say(phone, 'COMPLAINT');
    await say(phone, '8');
    await say(phone, 'the volunteer charged us 10 dollars for the voucher');
    const i = await s.db.knex('complaint_intakes').where('contact_id', await contactOf(phone)).first('state');
    expect(String(i.state)).toMatch(/^v1\./);
    expect(String(i.state)).not.toContain('dollars');
    expect(await lastText(phone)).toMatch(/May we keep your number/);
  });

  it('a keyword followed by the story skips the "what happened" question', async () => {
    const phone = '+51987300003';
    await say(phone, 'Queja: no me dejaron entrar al albergue anoche');
    await say(phone, '4');
    expect(await lastText(phone)).toMatch(/guardar su numero/);
    await say(phone, '2');
    const row = await s.db.knex('complaints').orderBy('id', 'desc').first();
    expect(row.narrative).toBe('no me dejaron entrar al albergue anoche');
  });
});

describe('over WhatsApp, beside a survey the person is answering', () => {
  const wa = (from: string, text: string, payload?: string): ParsedInbound => ({
    channel: 'whatsapp', medium: 'whatsapp', providerId: `wamid.c${++seq}`, from, fromKind: 'phone', kind: payload ? 'list' : 'text', text, payload: payload ?? null, receivedAt: new Date(),
  });
  const waSay = async (from: string, text: string, payload?: string) => (await receive(s, ROUTER_STEPS, [wa(from, text, payload)])).routes[0];

  it('taps on the intake’s list and buttons answer the intake, never the survey; the survey carries on after', async () => {
    const phone = '+51987400001';
    await waSay(phone, 'hola');
    const contactId = await contactOf(phone);
    const { startSession } = await import('../../src/surveys/sessions.js');
    const started = await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId, medium: 'whatsapp', requireConsent: false });
    const before = await s.db.knex('survey_sessions').where('id', started.sessionId).first('status', 'current_question', 'step');

    expect(await waSay(phone, 'COMPLAINT')).toBe('complaint');
    const out = await outboxFor(s.db.knex, contactId);
    const list = out[out.length - 1].content as { type: string; rows: { id: string }[] };
    expect(list.type).toBe('list');
    expect(list.rows[3].id).toBe('cx:category:4');
    await waSay(phone, 'Complaint about aid', 'cx:category:4');
    await waSay(phone, 'The food parcels were short of rice');
    await waSay(phone, 'Yes, keep it', 'cx:keep_contact:1');
    await waSay(phone, 'Yes', 'cx:wants_answer:1');
    await waSay(phone, 'WhatsApp', 'cx:reply_channel:1');
    const ack = await lastText(phone);
    expect(ack).toMatch(/Your code is [A-Z0-9]{6}/);
    const row = await s.db.knex('complaints').orderBy('id', 'desc').first();
    expect(row).toMatchObject({ category: 'programme', narrative: 'The food parcels were short of rice', reply_medium: 'whatsapp', source: 'whatsapp' });
    const grant = (await consentHistory(s.db.knex, contactId)).find((c) => c.purpose === 'complaint_followup')!;
    expect(grant.method).toBe('button');

    const after = await s.db.knex('survey_sessions').where('id', started.sessionId).first('status', 'current_question', 'step');
    expect(after).toEqual(before);
  });
});

describe('escalation', () => {
  it('fires once when a high-priority case passes 24 hours (simulated clock)', async () => {
    const { openComplaint } = await import('../../src/complaints/service.js');
    const receivedAt = new Date('2026-03-02T10:00:00Z');
    const opened = await s.db.knex.transaction((trx) => openComplaint(trx, { source: 'phone', category: 'safety', narrative: 'amenazas en el albergue', receivedAt }));
    expect(opened.priority).toBe('high');
    expect(opened.dueAt.toISOString()).toBe('2026-03-03T10:00:00.000Z');
    const before = await runComplaintsJob(s.db, s.config, { now: new Date('2026-03-03T09:59:00Z') });
    const row0 = await s.db.knex('complaints').where('code', opened.code).first('escalated_at');
    expect(row0.escalated_at).toBeNull();
    expect(before.escalated).toBe(0);
    const at = new Date('2026-03-03T10:01:00Z');
    const r = await runComplaintsJob(s.db, s.config, { now: at });
    expect(r.escalated).toBeGreaterThanOrEqual(1);
    const row = await s.db.knex('complaints').where('code', opened.code).first('id', 'escalated_at');
    expect(toDate(row.escalated_at).toISOString()).toBe(at.toISOString());
    const events = await s.db.knex('complaint_events').where({ complaint_id: row.id, type: 'escalated' });
    expect(events).toHaveLength(1);
    const again = await runComplaintsJob(s.db, s.config, { now: new Date('2026-03-03T12:00:00Z') });
    expect(again.escalated).toBe(0);
    // The audit log records it without naming the sensitive case.
    const audit = await s.db.knex('audit_events').where('action', 'complaint.escalate').orderBy('id', 'desc').first();
    expect(audit.entity_type).toBe('restricted');
    expect(String(audit.entity_id)).not.toContain(opened.code);
  });

  it('the service levels are settings', async () => {
    const { openComplaint } = await import('../../src/complaints/service.js');
    const receivedAt = new Date('2026-03-02T10:00:00Z');
    const opened = await s.db.knex.transaction((trx) => openComplaint(trx, { source: 'phone', category: 'question', receivedAt, sla: { high: 2, medium: 10, low: 48 } }));
    expect(opened.priority).toBe('low');
    expect(opened.dueAt.toISOString()).toBe('2026-03-04T10:00:00.000Z');
  });
});
