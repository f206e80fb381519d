/**
 * The staff inbox's services: which conversations it lists (unhandled and failed messages, not the
 * ones an automatic step answered, not erased contacts, psychosocial handoffs only for focal points),
 * claims (two operators at once: exactly one wins; an abandoned claim can be taken over), replies
 * (only the holder; free text inside the WhatsApp window or by SMS, to the address the person wrote
 * from; outside the window only a key message, sent by the dispatcher as its template), topic,
 * rumour, close and reopen, and turning an answer into an FAQ entry that answers only after approval.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { approveMessage, getMessage } from '../../src/broadcasts/messages.js';
import { setTriage } from '../../src/complaints/pss.js';
import { eraseContact } from '../../src/contacts/rights.js';
import { toInt } from '../../src/db/values.js';
import { HttpError } from '../../src/http/errors.js';
import {
  CLAIM_TIMEOUT_MINUTES, claimConversation, closeConversation, faqDraft, faqFromReply, getConversation, keywordsFrom, listConversations, releaseConversation,
  reopenConversation, replyToConversation, setRumour, tagConversation, type Viewer,
} from '../../src/inbox/service.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { receive, storeInbound } from '../../src/messaging/inbound.js';
import { startInboundWorker } from '../../src/messaging/inbound-worker.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { listAudit, SYSTEM } from '../../src/staff/audit.js';
import { ROLE_PERMISSIONS, type Role } from '../../src/staff/roles.js';
import { createUser } from '../../src/staff/service.js';
import { approvedMessage, type Staff } from '../broadcasts/fixtures.js';
import { testServices } from '../helpers/services.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';

let s: Awaited<ReturnType<typeof testServices>>;
let fake: FakeProvider;
let channels: ChannelRegistry;
const users = {} as Record<'ana' | 'ben' | 'focal' | 'editor' | 'handler', Viewer>;

async function viewer(email: string, role: Role): Promise<Viewer> {
  const { user } = await createUser(s.db, SYSTEM, { email, name: email.split('@')[0], role, password: 'correct horse battery staple' });
  return { actor: { type: 'staff', id: user.id, userId: user.id, label: user.email, role }, permissions: ROLE_PERMISSIONS[role] };
}

beforeAll(async () => {
  fake = await startFakeProvider();
  s = await testServices({ ...fake.env(), DEFAULT_LANGUAGE: 'es', PROGRAMME_NAME: 'Ayni Lima', WHATSAPP_RATE_PER_SECOND: '1000', TWILIO_RATE_PER_SECOND: '1000' });
  channels = buildChannels(s.config);
  users.ana = await viewer('ana@example.org', 'broadcaster');
  users.ben = await viewer('ben@example.org', 'complaints');
  users.focal = await viewer('focal@example.org', 'focal_point');
  users.editor = await viewer('editor@example.org', 'editor');
  users.handler = await viewer('handler@example.org', 'complaints');
});
afterEach(() => {
  vi.useRealTimers();
});
afterAll(async () => {
  await channels?.close();
  await s?.close();
  await fake?.close();
});

let seq = 0;
let phoneSeq = 0;
const newPhone = () => `+5198760${String(++phoneSeq).padStart(4, '0')}`;
function msg(from: string, text: string, o: { medium?: 'whatsapp' | 'sms'; at?: Date } = {}): ParsedInbound {
  const medium = o.medium ?? 'whatsapp';
  return { channel: medium === 'whatsapp' ? 'whatsapp' : 'twilio', medium, providerId: `inbox-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: o.at ?? new Date() };
}
const say = async (from: string, text: string, o: { medium?: 'whatsapp' | 'sms'; at?: Date } = {}) => (await receive(s, ROUTER_STEPS, [msg(from, text, o)])).routes[0];
const contactOf = async (phone: string, medium: 'whatsapp' | 'sms' = 'whatsapp') =>
  toInt((await s.db.knex('contact_addresses').where({ address: phone, channel: medium }).first('contact_id')).contact_id);
const conversationOf = async (contactId: number) => toInt((await s.db.knex('inbox_conversations').where('contact_id', contactId).first('id')).id);
const refusal = async (p: Promise<unknown>): Promise<HttpError> => {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(HttpError);
  return e as HttpError;
};
const outboxCount = async (contactId: number) => toInt((await s.db.knex('outbox').where('contact_id', contactId).count({ n: '*' }))[0].n);
const staffOf = (author: Viewer, reviewer: Viewer): Staff => ({ author: author.actor, reviewer: reviewer.actor });

describe('which conversations the inbox lists', () => {
  it('lists messages no step answered and messages whose routing failed, not those an automatic step handled; newest first', async () => {
    const asked = newPhone();
    const joined = newPhone();
    const broken = newPhone();
    expect(await say(asked, 'hola, ¿cuándo abren el comedor?')).toBe('inbox');
    expect(await say(joined, 'UNIRSE')).not.toBe('inbox');

    // A message whose routing throws every time is set aside as `error` by the inbound worker.
    const stored = await storeInbound(s, [msg(broken, 'mi hijo está enfermo')]);
    const failing = [{ stage: 'global' as const, name: 'broken', step: async () => { throw new Error('broken step'); } }];
    const worker = startInboundWorker(s, { steps: failing, maxFailures: 1, sweepMs: 60_000 });
    await worker.kick();
    await worker.stop();
    expect((await s.db.knex('inbound_messages').where('id', stored.stored[0]).first('route')).route).toBe('error');

    const { data, total, counts } = await listConversations(s.db, users.ana, {});
    const ids = data.map((c) => c.contactId);
    expect(ids).toContain(await contactOf(asked));
    expect(ids).toContain(await contactOf(broken));
    expect(ids).not.toContain(await contactOf(joined));
    expect(ids.indexOf(await contactOf(broken))).toBeLessThan(ids.indexOf(await contactOf(asked))); // newest first
    expect(total).toBe(data.length);
    expect(counts.open).toBe(total);
    const failed = data.find((c) => c.hasError)!;
    expect(failed.contactId).toBe(await contactOf(broken));
    expect(counts.errors).toBe(1);
    const a = data.find((c) => c.preview === 'hola, ¿cuándo abren el comedor?')!;
    expect(a).toMatchObject({ contactId: await contactOf(asked), medium: 'whatsapp', status: 'open', claim: null, topic: null, rumour: false, hasError: false });
    // Its thread shows the message flagged as not handled automatically.
    const c = await getConversation(s.db, users.ana, failed.id);
    expect(c.thread).toEqual([expect.objectContaining({ direction: 'in', text: 'mi hijo está enfermo', error: true })]);
  });

  it('leaves out (and does not count) contacts that were erased', async () => {
    const phone = newPhone();
    await say(phone, '¿dónde me registro?');
    const contactId = await contactOf(phone);
    const before = await listConversations(s.db, users.ana, {});
    await eraseContact(s.db, SYSTEM, contactId);
    const after = await listConversations(s.db, users.ana, {});
    expect(after.total).toBe(before.total - 1);
    expect(after.counts.open).toBe(before.counts.open - 1);
    expect(after.data.map((c) => c.contactId)).not.toContain(contactId);
    expect((await refusal(getConversation(s.db, users.ana, await conversationOf(contactId)))).status).toBe(404);
  });

  it('shows a psychosocial handoff only to focal points (404 to everyone else)', async () => {
    const phone = newPhone();
    await say(phone, 'no puedo más');
    const contactId = await contactOf(phone);
    await setTriage(s.db, s.config, users.focal, { contactId, level: 'red', sendMessage: false });
    expect(await say(phone, 'sigo aquí')).toBe('inbox');
    const id = await conversationOf(contactId);
    expect((await listConversations(s.db, users.ben, {})).data.map((c) => c.id)).not.toContain(id);
    expect((await refusal(getConversation(s.db, users.ben, id))).status).toBe(404);
    expect((await refusal(claimConversation(s.db, users.ben, id))).status).toBe(404);
    const seen = (await listConversations(s.db, users.focal, {})).data.find((c) => c.id === id);
    expect(seen).toMatchObject({ restricted: true });
  });

  it('a message set aside during a complaint intake is shown only to focal points (it may be a sensitive narrative)', async () => {
    const phone = newPhone();
    expect(await say(phone, 'QUEJA')).toBe('complaint');
    const contactId = await contactOf(phone);
    expect(await s.db.knex('complaint_intakes').where('contact_id', contactId).first('id')).toBeDefined();
    await storeInbound(s, [msg(phone, 'el voluntario me pidió dinero')]);
    const failing = [{ stage: 'global' as const, name: 'broken', step: async () => { throw new Error('broken step'); } }];
    const worker = startInboundWorker(s, { steps: failing, maxFailures: 1, sweepMs: 60_000 });
    await worker.kick();
    await worker.stop();
    const id = await conversationOf(contactId);
    expect((await listConversations(s.db, users.ben, {})).data.map((c) => c.id)).not.toContain(id);
    expect((await refusal(getConversation(s.db, users.ben, id))).status).toBe(404);
    expect(await getConversation(s.db, users.focal, id)).toMatchObject({ restricted: true, hasError: true });
    // The intake's own messages are never part of the thread.
    expect((await getConversation(s.db, users.focal, id)).thread.map((t) => t.text)).toEqual(['el voluntario me pidió dinero']);
  });
});

describe('claims', () => {
  it('two operators claiming at once: exactly one wins, the other is told who holds it', async () => {
    for (let round = 0; round < 5; round++) {
      const phone = newPhone();
      await say(phone, `pregunta ${round}`);
      const id = await conversationOf(await contactOf(phone));
      const results = await Promise.allSettled([claimConversation(s.db, users.ana, id), claimConversation(s.db, users.ben, id)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(HttpError);
      expect(lost.reason).toMatchObject({ status: 409, code: 'claimed_by_other' });
      const row = await s.db.knex('inbox_conversations').where('id', id).first('claimed_by');
      const winner = results[0].status === 'fulfilled' ? users.ana : users.ben;
      expect(row.claimed_by).toBe(`staff:${winner.actor.id}`);
      expect((lost.reason as HttpError).message).toContain(winner === users.ana ? 'ana' : 'ben');
    }
  });

  it('only the holder replies or releases; an abandoned claim can be taken over; claims are audited', async () => {
    const phone = newPhone();
    await say(phone, '¿hay reparto mañana?');
    const contactId = await contactOf(phone);
    const id = await conversationOf(contactId);
    const before = await outboxCount(contactId);

    expect(await refusal(replyToConversation(s.db, s.config, users.ana, id, { text: 'Sí, a las 9.' }))).toMatchObject({ status: 409, code: 'not_claimed' });
    await claimConversation(s.db, users.ana, id);
    expect(await refusal(replyToConversation(s.db, s.config, users.ben, id, { text: 'Sí, a las 9.' }))).toMatchObject({ status: 409, code: 'claimed_by_other' });
    expect(await refusal(releaseConversation(s.db, users.ben, id))).toMatchObject({ status: 409, code: 'not_claimer' });
    expect(await refusal(claimConversation(s.db, users.ben, id))).toMatchObject({ status: 409, code: 'claimed_by_other' });
    expect(await outboxCount(contactId)).toBe(before);

    // Ana leaves it: after the timeout Ben may take it over, and Ana can no longer answer.
    const later = new Date(Date.now() + (CLAIM_TIMEOUT_MINUTES + 1) * 60_000);
    expect(await claimConversation(s.db, users.ben, id, later)).toEqual({ tookOver: true });
    expect(await refusal(replyToConversation(s.db, s.config, users.ana, id, { text: 'Sí' }, later))).toMatchObject({ code: 'claimed_by_other' });
    await releaseConversation(s.db, users.ben, id, later);
    expect((await getConversation(s.db, users.ben, id)).claim).toBeNull();

    const events = (await listAudit(s.db, { entityType: 'inbox_conversation', entityId: String(id) })).map((e) => e.action);
    expect(events).toEqual(expect.arrayContaining(['inbox.claim', 'inbox.release', 'inbox.view']));
    const takeover = (await listAudit(s.db, { action: 'inbox.claim', entityId: String(id) })).find((e) => e.detail?.tookOverFrom);
    expect(takeover?.detail).toEqual({ contactId, tookOverFrom: `staff:${users.ana.actor.id}` });
  });
});

describe('replies', () => {
  it('inside the WhatsApp window: free text goes to the outbox as a reply, to the address the person wrote from', async () => {
    const phone = newPhone();
    await say(phone, '¿dónde queda la oficina?', { medium: 'sms' });
    const contactId = await contactOf(phone, 'sms');
    // The same person also has a WhatsApp address (written on earlier); they wrote last by SMS.
    const wa = await s.db.knex('contact_addresses').insert({ contact_id: contactId, channel: 'whatsapp', kind: 'phone', address: phone, opted_out: false, last_inbound_at: new Date(Date.now() - 3_600_000), created_at: new Date() }).returning('id');
    expect(wa).toHaveLength(1);
    const smsAddress = toInt((await s.db.knex('contact_addresses').where({ contact_id: contactId, channel: 'sms' }).first('id')).id);
    const id = await conversationOf(contactId);
    await claimConversation(s.db, users.ana, id);
    const r = await replyToConversation(s.db, s.config, users.ana, id, { text: 'En la Av. Arequipa 123, de 9 a 17 h.' });
    expect(r).toMatchObject({ kind: 'text', asTemplate: false, medium: 'sms' });
    const row = await s.db.knex('outbox').where('id', r.outboxId).first();
    expect(row).toMatchObject({ contact_id: contactId, purpose: 'reply', channel: 'sms', address_id: smsAddress, status: 'queued' });
    expect(JSON.parse(typeof row.content === 'string' ? row.content : JSON.stringify(row.content))).toEqual({ type: 'text', text: 'En la Av. Arequipa 123, de 9 a 17 h.' });

    // A WhatsApp message inside the window: free text to the WhatsApp address.
    const p2 = newPhone();
    await say(p2, 'hola');
    const c2 = await contactOf(p2);
    const id2 = await conversationOf(c2);
    await claimConversation(s.db, users.ana, id2);
    const conv = await getConversation(s.db, users.ana, id2);
    expect(conv.window).toMatchObject({ medium: 'whatsapp', applies: true, open: true });
    expect(conv.window.until!.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    const r2 = await replyToConversation(s.db, s.config, users.ana, id2, { text: 'Hola, ¿en qué le ayudo?' });
    const row2 = await s.db.knex('outbox').where('id', r2.outboxId).first();
    expect(row2).toMatchObject({ purpose: 'reply', channel: 'whatsapp', address_id: toInt((await s.db.knex('contact_addresses').where({ contact_id: c2, channel: 'whatsapp' }).first('id')).id) });
    const audit = (await listAudit(s.db, { action: 'inbox.reply', entityId: String(id2) }))[0];
    expect(audit.detail).toMatchObject({ contactId: c2, outboxId: r2.outboxId, kind: 'text', medium: 'whatsapp' });
    expect(JSON.stringify(audit.detail)).not.toContain('ayudo');
  });

  it('outside the WhatsApp window: free text is refused with the reason; an approved key message goes as its template, which the dispatcher sends as one', async () => {
    const phone = newPhone();
    await say(phone, '¿sigue el programa de bonos?', { at: new Date(Date.now() - 26 * 3_600_000) });
    const contactId = await contactOf(phone);
    const id = await conversationOf(contactId);
    await claimConversation(s.db, users.ana, id);
    const conv = await getConversation(s.db, users.ana, id);
    expect(conv.window).toMatchObject({ applies: true, open: false });
    const before = await outboxCount(contactId);

    const refused = await refusal(replyToConversation(s.db, s.config, users.ana, id, { text: 'Sí, sigue.' }));
    expect(refused).toMatchObject({ status: 409, code: 'window_closed' });
    expect(refused.message).toContain('24-hour window');
    expect(await outboxCount(contactId)).toBe(before);

    const st = staffOf(users.ana, users.editor);
    const plain = await approvedMessage(s.db, st, { es: { text: 'El programa sigue hasta diciembre.' } });
    expect(await refusal(replyToConversation(s.db, s.config, users.ana, id, { keyMessageId: plain.id }))).toMatchObject({ status: 409, code: 'no_template' });
    const withTemplate = await approvedMessage(s.db, st, {
      es: { text: 'Hola {{name}}, el programa sigue hasta diciembre.', template: { name: 'programa_sigue', language: 'es', params: ['{{name}}'] } },
    });
    const r = await replyToConversation(s.db, s.config, users.ana, id, { keyMessageId: withTemplate.id });
    expect(r).toMatchObject({ kind: 'key_message', asTemplate: true, medium: 'whatsapp', language: 'es' });
    const row = await s.db.knex('outbox').where('id', r.outboxId).first();
    const content = typeof row.content === 'string' ? JSON.parse(row.content) : row.content;
    expect(content).toMatchObject({ type: 'template', name: 'programa_sigue', language: 'es' });
    expect(row).toMatchObject({ purpose: 'reply', channel: 'whatsapp' });

    // The dispatcher sends it as a template (its send-time checks passed: a reply needs an active contact).
    fake.reset();
    const d = new Dispatcher({ db: s.db, config: s.config, log: s.log, adapters: channels.all, pollMs: 20 });
    await d.runUntilIdle();
    expect((await s.db.knex('outbox').where('id', r.outboxId).first('status')).status).toBe('sent');
    const sent = fake.requests.filter((q) => q.provider === 'whatsapp' && q.to.includes(phone));
    expect(sent.map((q) => q.body.type)).toContain('template');
    expect(sent.map((q) => q.body.type)).not.toContain('text'); // the closed window's free text never went
  });

  it('SMS has no window: free text is allowed however long ago the person wrote', async () => {
    const phone = newPhone();
    await say(phone, 'necesito ayuda', { medium: 'sms', at: new Date(Date.now() - 30 * 86_400_000) });
    const contactId = await contactOf(phone, 'sms');
    const id = await conversationOf(contactId);
    await claimConversation(s.db, users.ben, id);
    expect((await getConversation(s.db, users.ben, id)).window).toMatchObject({ medium: 'sms', applies: false, open: true });
    const r = await replyToConversation(s.db, s.config, users.ben, id, { text: 'Le llamamos hoy.' });
    expect(r).toMatchObject({ medium: 'sms', kind: 'text' });
  });

  it('refuses a blocked person, and a person who said STOP and has not written since', async () => {
    const phone = newPhone();
    await say(phone, 'hola');
    const contactId = await contactOf(phone);
    const id = await conversationOf(contactId);
    await claimConversation(s.db, users.ana, id);
    await s.db.knex('contacts').where('id', contactId).update({ status: 'blocked' });
    expect(await refusal(replyToConversation(s.db, s.config, users.ana, id, { text: 'Hola' }))).toMatchObject({ code: 'contact_blocked' });
    await s.db.knex('contacts').where('id', contactId).update({ status: 'stopped', stopped_at: new Date(Date.now() + 1000) });
    expect(await refusal(replyToConversation(s.db, s.config, users.ana, id, { text: 'Hola' }))).toMatchObject({ code: 'contact_stopped' });
  });
});

describe('topic, rumour, close and reopen', () => {
  it('tags, marks rumours, filters by them, closes, and reopens when the person writes again', async () => {
    const phone = newPhone();
    await say(phone, 'dicen que cobran por inscribirse, ¿es verdad?');
    const contactId = await contactOf(phone);
    const id = await conversationOf(contactId);

    expect(await refusal(tagConversation(s.db, users.ana, id, 'not a topic!'))).toMatchObject({ status: 400 });
    await tagConversation(s.db, users.ana, id, ' Registration ');
    await setRumour(s.db, users.ana, id, true);
    const rumours = await listConversations(s.db, users.ana, { rumour: 'true' });
    expect(rumours.data.map((c) => c.id)).toEqual([id]);
    expect(rumours.counts.rumours).toBe(1);
    expect((await listConversations(s.db, users.ana, { topic: 'registration' })).data.map((c) => c.id)).toEqual([id]);
    expect((await listConversations(s.db, users.ana, { topic: 'health' })).data.map((c) => c.id)).not.toContain(id);

    // Another operator's live claim stops a close; the holder closes.
    await claimConversation(s.db, users.ben, id);
    expect(await refusal(closeConversation(s.db, users.ana, id))).toMatchObject({ code: 'claimed_by_other' });
    expect((await listConversations(s.db, users.ben, { show: 'mine' })).data.map((c) => c.id)).toContain(id);
    expect((await listConversations(s.db, users.ana, { show: 'unclaimed' })).data.map((c) => c.id)).not.toContain(id);
    await closeConversation(s.db, users.ben, id);
    expect((await listConversations(s.db, users.ana, {})).data.map((c) => c.id)).not.toContain(id);
    expect((await listConversations(s.db, users.ana, { status: 'closed' })).data.map((c) => c.id)).toContain(id);
    expect(await refusal(replyToConversation(s.db, s.config, users.ben, id, { text: 'x' }))).toMatchObject({ code: 'conversation_closed' });

    // The person writes again: open, unclaimed, topic and rumour kept.
    expect(await say(phone, '¿me responden?')).toBe('inbox');
    const again = await getConversation(s.db, users.ana, id);
    expect(again).toMatchObject({ status: 'open', claim: null, topic: 'registration', rumour: true, closedAt: null });
    expect(again.thread.filter((t) => t.direction === 'in')).toHaveLength(2);

    // Closed by hand and reopened by hand too.
    await closeConversation(s.db, users.ana, id);
    await reopenConversation(s.db, users.ana, id);
    expect(await refusal(reopenConversation(s.db, users.ana, id))).toMatchObject({ code: 'conversation_open' });
    await setRumour(s.db, users.ana, id, false);
    const actions = (await listAudit(s.db, { entityType: 'inbox_conversation', entityId: String(id), limit: 100 })).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['inbox.tag', 'inbox.rumour', 'inbox.close', 'inbox.reopen']));
  });
});

describe('an answer becomes an FAQ entry', () => {
  it('drafts a key message in the answer’s language and an FAQ entry that answers only once a second person approves it', async () => {
    const phone = newPhone();
    await say(phone, '¿Dónde me puedo VACUNAR gratis?');
    const contactId = await contactOf(phone);
    const id = await conversationOf(contactId);
    await tagConversation(s.db, users.ana, id, 'health');
    await claimConversation(s.db, users.ana, id);
    const reply = await replyToConversation(s.db, s.config, users.ana, id, { text: 'En el centro de salud de su barrio, los sábados, gratis.' });

    const draft = await faqDraft(s.db, s.config, users.ana, id, reply.replyId);
    expect(draft).toMatchObject({ language: 'es', text: 'En el centro de salud de su barrio, los sábados, gratis.', topic: 'health' });
    expect(draft.keywords).toContain('VACUNAR');
    expect(keywordsFrom('STOP por favor, ¿dónde vacunan?')).not.toContain('STOP');

    // Without messages.write (a complaints handler) it is refused.
    expect(await refusal(faqFromReply(s.db, s.config, users.ben, id, { replyId: reply.replyId, title: 'x', keywords: ['vacunar'] }))).toMatchObject({ status: 403 });
    // Reserved words are refused before anything is written.
    const keysBefore = toInt((await s.db.knex('key_messages').count({ n: '*' }))[0].n);
    expect(await refusal(faqFromReply(s.db, s.config, users.ana, id, { replyId: reply.replyId, title: 'Vacunas', keywords: ['stop'] }))).toMatchObject({ status: 400 });
    expect(toInt((await s.db.knex('key_messages').count({ n: '*' }))[0].n)).toBe(keysBefore);

    const made = await faqFromReply(s.db, s.config, users.ana, id, { replyId: reply.replyId, title: 'Vacunación gratuita', keywords: ['vacunar', 'vacuna'], submit: true });
    expect(made.message).toMatchObject({ topic: 'health', approved: null, languages: ['es'] });
    expect(made.message.draft).toMatchObject({ status: 'submitted', variants: { es: { text: 'En el centro de salud de su barrio, los sábados, gratis.' } } });
    expect(made.faq).toMatchObject({ messageId: made.message.id, keywords: { es: ['VACUNAR', 'VACUNA'] }, active: true });
    expect(await refusal(faqFromReply(s.db, s.config, users.ana, id, { replyId: reply.replyId, title: 'Otra vez', keywords: ['vacunita'] }))).toMatchObject({ code: 'already_faq' });
    expect((await getConversation(s.db, users.ana, id)).thread.find((t) => t.replyId === reply.replyId)?.faqMessageId).toBe(made.message.id);

    // Not approved yet: the same question from someone else still goes to the inbox.
    expect(await say(newPhone(), '¿donde puedo vacunar a mi hija?')).toBe('inbox');
    // Its author cannot approve it (two-person rule); the editor can, and then it answers.
    expect(await refusal(approveMessage(s.db, users.ana.actor, made.message.id))).toMatchObject({ code: 'two_person_rule' });
    await approveMessage(s.db, users.editor.actor, made.message.id);
    expect((await getMessage(s.db.knex, made.message.id)).approved).not.toBeNull();
    // The FAQ index is kept for 10 s: once it has expired, the approved entry answers.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 11_000);
    const asker = newPhone();
    expect(await say(asker, 'quiero VACUNAR a mi hijo')).toBe('faq');
    const answer = await s.db.knex('outbox').where('contact_id', await contactOf(asker)).orderBy('id', 'desc').first('content');
    expect(JSON.stringify(answer.content)).toContain('centro de salud de su barrio');
    vi.useRealTimers();

    const audit = (await listAudit(s.db, { action: 'inbox.faq', entityId: String(id) }))[0];
    expect(audit.detail).toEqual({ replyId: reply.replyId, keyMessageId: made.message.id, faqId: made.faq.id, submitted: true });
  });
});
