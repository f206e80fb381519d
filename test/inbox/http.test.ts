/**
 * The staff inbox over HTTP: the console pages as an operator on a slow connection uses them (plain
 * forms with CSRF, no script), and /api/v1/inbox — claims by two operators at once, refusals with a
 * clear reason, replies queued in the outbox, topic, rumour, close, an FAQ entry from an answer —
 * and who may open what.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { toInt } from '../../src/db/values.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { createToken } from '../../src/staff/service.js';
import type { Role } from '../../src/staff/roles.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { approvedMessage } from '../broadcasts/fixtures.js';

let t: TestApp;
const web = {} as Record<'broadcaster' | 'complaints' | 'editor' | 'cash', Client>;
const ids = {} as Record<'broadcaster' | 'complaints' | 'editor' | 'cash', number>;
const tokens = {} as Record<string, string>;

beforeAll(async () => {
  t = await startTestApp({ DEFAULT_LANGUAGE: 'es' });
  for (const role of ['broadcaster', 'complaints', 'editor', 'cash'] as const) {
    ids[role] = (await makeUser(t.db, role)).id;
    web[role] = new Client(t.url);
    expect((await web[role].login(`${role}@example.org`)).status).toBe(302);
  }
  for (const [name, role] of [['one', 'broadcaster'], ['two', 'complaints'], ['viewer', 'viewer']] as [string, Role][]) {
    tokens[name] = (await createToken(t.db, SYSTEM, { name, role })).secret;
  }
});
afterAll(() => t?.close());

let seq = 0;
let phoneSeq = 0;
const newPhone = () => `+5198770${String(++phoneSeq).padStart(4, '0')}`;
async function say(from: string, text: string, o: { medium?: 'whatsapp' | 'sms'; at?: Date } = {}): Promise<string> {
  const medium = o.medium ?? 'whatsapp';
  const m: ParsedInbound = { channel: medium === 'whatsapp' ? 'whatsapp' : 'twilio', medium, providerId: `web-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: o.at ?? new Date() };
  return (await receive({ config: t.config, db: t.db, log: createLogger('silent') }, ROUTER_STEPS, [m])).routes[0];
}
async function conversationOf(phone: string): Promise<number> {
  const a = await t.db.knex('contact_addresses').where('address', phone).first('contact_id');
  return toInt((await t.db.knex('inbox_conversations').where('contact_id', toInt(a.contact_id)).first('id')).id);
}
const api = (token: string, method: string, path: string, json?: unknown) => new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[token]}` }, json });
const errorOf = (res: { text_: string }) => JSON.parse(res.text_).error as { code: string; message: string; details?: Record<string, unknown> };

describe('console', () => {
  it('lists the conversation, and an operator claims it and replies with plain forms; another operator is told who answers', async () => {
    const phone = newPhone();
    expect(await say(phone, '¿A qué hora abre el comedor popular?')).toBe('inbox');
    const id = await conversationOf(phone);

    const list = await web.broadcaster.get('/inbox');
    expect(list.status).toBe(200);
    expect(list.text_).toContain(`href="/inbox/${id}"`);
    expect(list.text_).toContain('¿A qué hora abre el comedor popular?');
    expect(list.text_).not.toMatch(/<script/i);
    expect(list.text_).toContain('href="/inbox"'); // in the menu

    const page = await web.broadcaster.get(`/inbox/${id}`);
    expect(page.status).toBe(200);
    expect(page.text_).toContain(`action="/inbox/${id}/claim"`);
    expect(page.text_).toContain('the 24-hour window is open until');
    expect(page.text_).not.toContain(`action="/inbox/${id}/reply"`); // not claimed yet

    // Without the CSRF token nothing happens.
    expect((await web.broadcaster.request('POST', `/inbox/${id}/claim`, { form: {} })).status).toBe(403);
    const claimed = await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/claim`, {});
    expect(claimed.status).toBe(302);
    const mine = await web.broadcaster.get(`/inbox/${id}`);
    expect(mine.text_).toContain('You claimed the conversation');
    expect(mine.text_).toContain(`action="/inbox/${id}/reply"`);

    // The other operator sees who answers, cannot claim, and a reply is refused with the reason.
    const other = await web.complaints.get(`/inbox/${id}`);
    expect(other.text_).toContain('Test broadcaster is answering this person');
    const took = await web.complaints.submit(`/inbox/${id}`, `/inbox/${id}/claim`, {});
    expect(took.status).toBe(409);
    expect(took.text_).toContain('Test broadcaster is answering this person');
    const refused = await web.complaints.submit(`/inbox/${id}`, `/inbox/${id}/reply`, { text: 'Abre a las 12.' });
    expect(refused.status).toBe(409);

    const sent = await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/reply`, { text: 'Abre a las 12, hasta las 14 h.' });
    expect(sent.status).toBe(302);
    const thread = await web.broadcaster.get(`/inbox/${id}`);
    expect(thread.text_).toContain('Reply queued for sending.');
    expect(thread.text_).toContain('Abre a las 12, hasta las 14 h.');
    expect(thread.text_).toContain(`/inbox/${id}/faq?reply=`);
    const rows = await t.db.knex('outbox').where({ purpose: 'reply' }).whereRaw('address_id = (SELECT id FROM contact_addresses WHERE address = ? AND channel = ?)', [phone, 'whatsapp']).orderBy('id');
    expect(rows.map((r: { content: unknown }) => JSON.stringify(r.content))).toEqual(expect.arrayContaining([expect.stringContaining('Abre a las 12, hasta las 14 h.')]));

    // Topic, rumour, close.
    expect((await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/tag`, { topic: 'food' })).status).toBe(302);
    expect((await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/rumour`, { rumour: 'true' })).status).toBe(302);
    expect((await web.broadcaster.get('/inbox?topic=food&rumour=true')).text_).toContain(`href="/inbox/${id}"`);
    expect((await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/close`, {})).status).toBe(302);
    expect((await web.broadcaster.get('/inbox')).text_).not.toContain(`href="/inbox/${id}"`);
    expect((await web.broadcaster.get('/inbox?status=closed')).text_).toContain(`href="/inbox/${id}"`);
  });

  it('outside the WhatsApp window offers only key messages with a template, and explains why free text cannot go', async () => {
    const phone = newPhone();
    await say(phone, '¿hay trabajo?', { at: new Date(Date.now() - 30 * 3_600_000) });
    const id = await conversationOf(phone);
    const st = { author: { type: 'staff' as const, id: ids.broadcaster, userId: ids.broadcaster, label: 'broadcaster@example.org', role: 'broadcaster' as const }, reviewer: { type: 'staff' as const, id: ids.editor, userId: ids.editor, label: 'editor@example.org', role: 'editor' as const } };
    const plain = await approvedMessage(t.db, st, { es: { text: 'Bolsa de trabajo: los lunes.' } });
    const tpl = await approvedMessage(t.db, st, { es: { text: 'Bolsa de trabajo: los lunes.', template: { name: 'bolsa_trabajo', language: 'es', params: [] } } });
    await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/claim`, {});
    const page = await web.broadcaster.get(`/inbox/${id}`);
    expect(page.text_).toContain('the 24-hour window closed at');
    expect(page.text_).toContain('free text cannot be sent');
    expect(page.text_).not.toContain('name="text"');
    expect(page.text_).toContain(`<option value="${tpl.id}">`);
    expect(page.text_).not.toContain(`<option value="${plain.id}">`);
    // A hand-made request with free text is refused, in the operator's words.
    const refused = await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/reply`, { text: 'Sí, los lunes.' });
    expect(refused.status).toBe(409);
    expect(refused.text_).toContain('The WhatsApp 24-hour window closed at');
    const ok = await web.broadcaster.submit(`/inbox/${id}`, `/inbox/${id}/reply`, { key_message_id: String(tpl.id) });
    expect(ok.status).toBe(302);
    expect((await web.broadcaster.get(`/inbox/${id}`)).text_).toContain('key message (WhatsApp template)');
  });

  it('turns an answer into a key-message draft and an FAQ entry from a form, for roles that write key messages', async () => {
    const phone = newPhone();
    await say(phone, '¿Cómo renuevo mi carnet de extranjería?');
    const id = await conversationOf(phone);
    await web.editor.submit(`/inbox/${id}`, `/inbox/${id}/claim`, {});
    await web.editor.submit(`/inbox/${id}`, `/inbox/${id}/reply`, { text: 'En Migraciones, con cita en línea.' });
    const replyId = toInt((await t.db.knex('inbox_replies').where('conversation_id', id).orderBy('id', 'desc').first('id')).id);
    const form = await web.editor.get(`/inbox/${id}/faq?reply=${replyId}`);
    expect(form.status).toBe(200);
    expect(form.text_).toContain('En Migraciones, con cita en línea.');
    expect(form.text_).toMatch(/name="keywords" value="[^"]*EXTRANJERIA/);
    const created = await web.editor.submit(`/inbox/${id}/faq?reply=${replyId}`, `/inbox/${id}/faq`, {
      reply_id: String(replyId), title: 'Carnet de extranjería', key: 'carnet-extranjeria', topic: 'documents', text: 'En Migraciones, con cita en línea.', keywords: 'carnet, extranjeria', submit: 'yes',
    });
    expect(created.status).toBe(302);
    const messageId = toInt((await t.db.knex('key_messages').where('key', 'carnet-extranjeria').first('id')).id);
    expect(created.headers.get('location')).toBe(`/messages/${messageId}`);
    expect(await t.db.knex('faq_entries').where('message_id', messageId)).toHaveLength(1);
    // A complaints handler (no messages.write) gets no form.
    expect((await web.complaints.get(`/inbox/${id}/faq?reply=${replyId}`)).status).toBe(403);
    expect((await web.complaints.get(`/inbox/${id}`)).text_).not.toContain('/faq?reply=');
  });

  it('refuses roles without the inbox', async () => {
    expect((await web.cash.get('/inbox')).status).toBe(403);
    expect((await web.cash.get('/inbox', { accept: 'text/html' })).text_).toContain('<html');
    expect((await web.cash.get('/')).text_).not.toContain('href="/inbox"');
  });
});

describe('API', () => {
  it('two operators claim at once: one 200, one 409 naming who answers; only the holder replies', async () => {
    const phone = newPhone();
    await say(phone, '¿dónde cobro el bono?');
    const id = await conversationOf(phone);
    const [a, b] = await Promise.all([api('one', 'POST', `/inbox/${id}/claim`), api('two', 'POST', `/inbox/${id}/claim`)]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const [winner, loser] = a.status === 200 ? ['one', 'two'] : ['two', 'one'];
    const lost = errorOf(a.status === 409 ? a : b);
    expect(lost.code).toBe('claimed_by_other');
    expect(lost.message).toContain(`token:${winner} is answering this person`);

    const no = await api(loser, 'POST', `/inbox/${id}/reply`, { text: 'En el banco.' });
    expect(no.status).toBe(409);
    expect(errorOf(no).code).toBe('claimed_by_other');
    const yes = await api(winner, 'POST', `/inbox/${id}/reply`, { text: 'En el Banco de la Nación, con su DNI.' });
    expect(yes.status).toBe(201);
    const body = JSON.parse(yes.text_);
    expect(body).toMatchObject({ kind: 'text', asTemplate: false, medium: 'whatsapp' });
    expect((await t.db.knex('outbox').where('id', body.outboxId).first('purpose')).purpose).toBe('reply');

    const got = await api(winner, 'GET', `/inbox/${id}`);
    expect(got.status).toBe(200);
    const conv = JSON.parse(got.text_).data;
    expect(conv.claim).toMatchObject({ mine: true, stale: false });
    expect(conv.window).toMatchObject({ medium: 'whatsapp', applies: true, open: true });
    expect(conv.thread.map((m: { direction: string }) => m.direction)).toEqual(['in', 'out']);

    // Validation: neither or both of text and keyMessageId; a bad topic.
    expect((await api(winner, 'POST', `/inbox/${id}/reply`, {})).status).toBe(400);
    expect((await api(winner, 'POST', `/inbox/${id}/reply`, { text: 'x', keyMessageId: 1 })).status).toBe(400);
    const badTopic = await api(winner, 'POST', `/inbox/${id}/tag`, { topic: 'gossip' });
    expect(badTopic.status).toBe(400);
    expect(errorOf(badTopic).details?.topic).toContain('choose one of');
    expect((await api(winner, 'POST', `/inbox/${id}/tag`, { topic: 'cash' })).status).toBe(200);
    expect((await api(winner, 'POST', `/inbox/${id}/rumour`, { rumour: true })).status).toBe(200);
    const list = JSON.parse((await api(winner, 'GET', '/inbox?rumour=true&topic=cash')).text_);
    expect(list.data.map((c: { id: number }) => c.id)).toEqual([id]);
    expect(list.counts.rumours).toBeGreaterThanOrEqual(1);
    expect((await api(loser, 'POST', `/inbox/${id}/close`)).status).toBe(409);
    expect((await api(winner, 'POST', `/inbox/${id}/close`)).status).toBe(200);
    expect((await api(winner, 'POST', `/inbox/${id}/reopen`)).status).toBe(200);
    expect((await api(winner, 'GET', '/inbox/topics')).text_).toContain('"cash"');
  });

  it('answers 404 for an unknown conversation and 403 for roles without the inbox; the routes are in the OpenAPI document', async () => {
    expect((await api('one', 'GET', '/inbox/999999')).status).toBe(404);
    expect((await api('viewer', 'GET', '/inbox')).status).toBe(403);
    expect((await api('viewer', 'POST', '/inbox/1/claim')).status).toBe(403);
    const doc = JSON.parse((await new Client(t.url).get('/api/v1/openapi.json')).text_);
    expect(doc.paths['/api/v1/inbox/{id}/claim'].post['x-permission']).toBe('inbox.reply');
    expect(doc.paths['/api/v1/inbox'].get['x-permission']).toBe('inbox.read');
    for (const p of ['reply', 'release', 'tag', 'rumour', 'close', 'reopen', 'faq']) expect(doc.paths[`/api/v1/inbox/{id}/${p}`]?.post).toBeDefined();
  });
});
