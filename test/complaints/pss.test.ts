/**
 * Psychosocial triage: keywords only suggest; red hands the conversation to a human (no bot answers
 * it) and sends the emergency numbers; yellow schedules a follow-up (overdue on a simulated clock)
 * and refers only with consent; green sends self-care messages. All of it restricted to focal points.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeHandoff, followupDone, listTriage, setTriage } from '../../src/complaints/pss.js';
import { runComplaintsJob } from '../../src/complaints/sla.js';
import { suggestPssLevel, suggestsSensitive } from '../../src/complaints/suggest.js';
import type { Viewer } from '../../src/complaints/service.js';
import { toInt } from '../../src/db/values.js';
import { receive } from '../../src/messaging/inbound.js';
import { outboxFor } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { ROLE_PERMISSIONS } from '../../src/staff/roles.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices({ PSS_EMERGENCY_NUMBERS: 'Emergencias 105 · Salud mental 113 (opción 5)', PROGRAMME_NAME: 'Cruz Roja Lima' });
});
afterAll(() => s?.close());

let seq = 0;
const sms = (from: string, text: string): ParsedInbound => ({ channel: 'simulator', medium: 'sms', providerId: `pss-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date() });
const say = async (from: string, text: string) => (await receive(s, ROUTER_STEPS, [sms(from, text)])).routes[0];
const contactOf = async (a: string) => toInt((await s.db.knex('contact_addresses').where('address', a).first('contact_id')).contact_id);
const focal: Viewer = { actor: { type: 'staff', id: 1, label: 'focal@example.org', role: 'focal_point' }, permissions: ROLE_PERMISSIONS.focal_point };
const handler: Viewer = { actor: { type: 'staff', id: 2, label: 'handler@example.org', role: 'complaints' }, permissions: ROLE_PERMISSIONS.complaints };

describe('keyword hints', () => {
  it('only suggest', () => {
    expect(suggestPssLevel(['ya no quiero vivir, no aguanto'])).toBe('red');
    expect(suggestPssLevel(['I feel anxious and cannot sleep', 'hello'])).toBe('yellow');
    expect(suggestPssLevel(['¿cuándo es el reparto?'])).toBeNull();
    expect(suggestsSensitive('me cobraron 20 soles para inscribirme')).toBe(true);
    expect(suggestsSensitive('the volunteer asked me to pay')).toBe(true);
    expect(suggestsSensitive('quiero saber la fecha del pago')).toBe(false);
  });
});

describe('red', () => {
  const phone = '+51987600001';
  it('hands the conversation to a human and sends the emergency numbers at once; the suggestion is recorded, not acted on', async () => {
    expect(await say(phone, 'no quiero vivir más')).toBe('inbox');
    const contactId = await contactOf(phone);
    const { record, warning } = await setTriage(s.db, s.config, focal, { contactId, level: 'red', note: 'riesgo alto' });
    expect(warning).toBeNull();
    expect(record).toMatchObject({ level: 'red', suggestedLevel: 'red', handoffOpen: true, messageStatus: 'sent', note: 'riesgo alto' });
    const out = await outboxFor(s.db.knex, contactId);
    const last = out[out.length - 1];
    expect(last.purpose).toBe('reply');
    expect(JSON.stringify(last.content)).toContain('Emergencias 105');
    // While the handoff is open, even a complaint keyword's intake or a survey do not answer: a person does.
    expect(await say(phone, 'hola?')).toBe('inbox');
    const n = (await outboxFor(s.db.knex, contactId)).length;
    expect(await say(phone, 'sigo aquí')).toBe('inbox');
    expect((await outboxFor(s.db.knex, contactId)).length).toBe(n); // no automatic acknowledgement
    expect(await say(phone, 'STOP')).toBe('stop'); // global words still win
    await closeHandoff(s.db, focal, record.id);
    expect((await listTriage(s.db, focal, { contactId }))[0].handoffOpen).toBe(false);
  });

  it('without configured numbers says so, and still hands over', async () => {
    const phone2 = '+51987600002';
    await say(phone2, 'hola');
    const contactId = await contactOf(phone2);
    const r = await setTriage(s.db, { ...s.config, PSS_EMERGENCY_NUMBERS: undefined }, focal, { contactId, level: 'red' });
    expect(r.warning).toBe('pss.warning.noNumbers');
    expect(r.record).toMatchObject({ handoffOpen: true, messageStatus: 'no_numbers' });
  });
});

describe('yellow and green', () => {
  it('yellow: a follow-up due in N days, marked overdue by the job when it passes; a referral only with consent', async () => {
    const phone = '+51987600003';
    await say(phone, 'me siento muy triste');
    const contactId = await contactOf(phone);
    const [service] = await s.db.knex('referral_services').insert({ organisation: 'CSMC', name: 'Psicología', active: true, created_at: new Date(), updated_at: new Date() }).returning('id');
    const serviceId = toInt(typeof service === 'object' ? service.id : service);
    await expect(setTriage(s.db, s.config, focal, { contactId, level: 'yellow', serviceId })).rejects.toMatchObject({ status: 400, details: { referralConsent: expect.any(String) } });
    const { record, referralId } = await setTriage(s.db, s.config, focal, { contactId, level: 'yellow', followupDays: 2, serviceId, referralConsent: true });
    expect(referralId).toMatch(/^[0-9a-f]{12}$/);
    const ref = await s.db.knex('referrals').where('id', referralId).first();
    expect(ref).toMatchObject({ triage_id: record.id, consent_method: 'operator' });
    expect(Boolean(ref.restricted)).toBe(true);
    expect(record.followupDueAt!.getTime() - record.at.getTime()).toBe(2 * 86_400_000);
    const r1 = await runComplaintsJob(s.db, s.config, { now: new Date(record.at.getTime() + 86_400_000) });
    expect(r1.followupsOverdue).toBe(0);
    const r2 = await runComplaintsJob(s.db, s.config, { now: new Date(record.at.getTime() + 3 * 86_400_000) });
    expect(r2.followupsOverdue).toBe(1);
    await followupDone(s.db, focal, record.id);
    await expect(followupDone(s.db, focal, record.id)).rejects.toMatchObject({ status: 404 });
  });

  it('green: self-care messages in the person’s language', async () => {
    const phone = '+51987600004';
    await say(phone, 'LANG en');
    const contactId = await contactOf(phone);
    await setTriage(s.db, s.config, focal, { contactId, level: 'green' });
    const out = await outboxFor(s.db.knex, contactId);
    expect(JSON.stringify(out[out.length - 1].content)).toContain('breathe slowly');
  });
});

describe('restricted', () => {
  it('a complaints handler cannot set, list or read triage (not found, like nothing)', async () => {
    const contactId = await contactOf('+51987600004');
    await expect(setTriage(s.db, s.config, handler, { contactId, level: 'green' })).rejects.toMatchObject({ status: 404 });
    await expect(listTriage(s.db, handler)).rejects.toMatchObject({ status: 404 });
  });

  it('notes are sealed; the audit log names no triage record', async () => {
    const rows = await s.db.knex('pss_triage').whereNotNull('note').select('note');
    for (const r of rows) expect(String(r.note)).toMatch(/^v1\./);
    const audit = await s.db.knex('audit_events').where('action', 'like', 'pss.%');
    expect(audit.length).toBeGreaterThan(0);
    for (const a of audit) expect(a.entity_type).toBe('restricted');
    const ids = await s.db.knex('pss_triage').pluck('id');
    expect(JSON.stringify(audit)).not.toMatch(new RegExp(ids.join('|')));
  });
});
