/**
 * The broadcasts domain over HTTP: the API (tokens act for the staff user who created them, so the
 * two-person rule holds across tokens), permissions, audit events, the console pages from writing a
 * message to watching a broadcast, and the scheduled and recurring broadcasts the job starts.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/staff/service.js';
import type { Actor } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { runDueBroadcasts } from '../../src/broadcasts/broadcasts.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { addList, addPeople } from './fixtures.js';

let t: TestApp;
const tokens: Record<string, string> = {};
const users: Record<string, { id: number; email: string }> = {};
let listId: number;

beforeAll(async () => {
  t = await startTestApp({ QUIET_HOURS: 'off', SMS_PRICE_PER_SEGMENT: '0.01' });
  for (const [name, role] of [['author', 'broadcaster'], ['editor', 'editor'], ['admin', 'admin'], ['viewer', 'viewer']] as [string, Role][]) {
    users[name] = await makeUser(t.db, role, `${name}@example.org`);
    const actor: Actor = { type: 'staff', id: users[name].id, label: users[name].email, role };
    tokens[name] = (await createToken(t.db, actor, { name: `${name} token`, role })).secret;
  }
  listId = await addList(t.db.knex, 'noticias', 'es');
  await addPeople(t.db.knex, 30, { lists: [listId], name: 'Ana', language: 'es' });
  await addPeople(t.db.knex, 10, { lists: [listId], name: 'Ann', language: 'en', channels: ['sms'] });
});
afterAll(() => t?.close());

const api = (who: string, method: string, path: string, json?: unknown) => new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[who]}` }, json });
const body = (r: { text_: string }) => JSON.parse(r.text_);

describe('API', () => {
  let messageId: number;
  let broadcastId: number;

  it('writes, submits and approves a key message; the author (even by token) cannot approve; a viewer sees nothing of the bank', async () => {
    const bad = await api('author', 'POST', '/key-messages', { key: 'Bad Key', title: '', topic: 'health', variants: {} });
    expect(bad.status).toBe(400);
    expect(Object.keys(body(bad).error.details)).toEqual(expect.arrayContaining(['body.key', 'body.title', 'body.variants']));

    const created = await api('author', 'POST', '/key-messages', { key: 'vacunas', title: 'Vacunación', topic: 'health', rumour: 'Dicen que la vacuna cuesta dinero', variants: { es: { text: 'Hola {{name}}, la vacuna es gratuita.' }, en: { text: 'Hi {{name}}, the vaccine is free.' } } });
    expect(created.status).toBe(201);
    messageId = body(created).data.id;
    expect(body(created).data).toMatchObject({ rumour: 'Dicen que la vacuna cuesta dinero', approved: null, draft: { version: 1, status: 'draft' } });

    expect((await api('viewer', 'GET', '/key-messages')).status).toBe(403);
    expect((await api('author', 'POST', `/key-messages/${messageId}/approve`)).status).toBe(403); // broadcaster lacks messages.approve
    expect((await api('author', 'POST', `/broadcasts`, { name: 'x', messageId, lists: [listId] })).status).toBe(409);

    expect((await api('author', 'POST', `/key-messages/${messageId}/submit`)).status).toBe(200);
    // The admin's token acts for the admin; edit as admin, then the admin may not approve.
    const edit = await api('admin', 'PATCH', `/key-messages/${messageId}`, { variants: { es: { text: 'Hola {{name}}, la vacuna es gratuita y segura.' }, en: { text: 'Hi {{name}}, the vaccine is free.' } } });
    expect(body(edit).data.draft).toMatchObject({ version: 1, status: 'draft' });
    await api('author', 'POST', `/key-messages/${messageId}/submit`);
    const own = await api('admin', 'POST', `/key-messages/${messageId}/approve`, {});
    expect(own.status).toBe(403);
    expect(body(own).error.code).toBe('two_person_rule');
    const ok = await api('editor', 'POST', `/key-messages/${messageId}/approve`, { version: 1 });
    expect(ok.status).toBe(200);
    expect(body(ok).data.approved).toMatchObject({ version: 1, status: 'approved', reviewedByLabel: expect.stringContaining('editor token') });
    const versions = await api('author', 'GET', `/key-messages/${messageId}/versions`);
    expect(body(versions).data).toHaveLength(1);
    const audit = await t.db.knex('audit_events').where({ entity_type: 'key_message', entity_id: String(messageId) }).orderBy('id').select('action');
    expect(audit.map((a: { action: string }) => a.action)).toEqual(['key_message.create', 'key_message.submit', 'key_message.update', 'key_message.submit', 'key_message.approve']);
  });

  it('composes, previews, sends, pauses, resumes and cancels a broadcast; the preview counts what is enqueued', async () => {
    expect((await api('editor', 'POST', '/broadcasts', { name: 'x', messageId, lists: [listId] })).status).toBe(403);
    const noAudience = await api('author', 'POST', '/broadcasts', { name: 'x', messageId });
    expect(body(noAudience).error.details).toHaveProperty(['body.lists']);
    const unknownList = await api('author', 'POST', '/broadcasts', { name: 'x', messageId, lists: [9999] });
    expect(body(unknownList).error.details['lists']).toContain('9999');

    const created = await api('author', 'POST', '/broadcasts', { name: 'Vacunas marzo', messageId, lists: [listId], footer: { es: 'Nunca te pediremos dinero.' } });
    expect(created.status).toBe(201);
    broadcastId = body(created).data.id;
    const preview = body(await api('author', 'GET', `/broadcasts/${broadcastId}/preview`)).data;
    expect(preview).toMatchObject({ recipients: 40, byChannel: { whatsapp: 30, sms: 10 } });
    expect(preview.samples.map((x: { language: string }) => x.language).sort()).toEqual(['en', 'es']);
    expect((await api('viewer', 'GET', `/broadcasts/${broadcastId}/preview`)).status).toBe(403);

    const sent = await api('author', 'POST', `/broadcasts/${broadcastId}/send`, {});
    expect(body(sent).data).toMatchObject({ status: 'sending', recipients: 40 });
    const stats = body(await api('viewer', 'GET', `/broadcasts/${broadcastId}/stats`));
    expect(stats).toMatchObject({ total: preview.recipients, queued: 40 });
    expect(Object.fromEntries(Object.entries(stats.byLanguage).map(([k, v]) => [k, (v as { total: number }).total]))).toEqual(Object.fromEntries(preview.byLanguage.map((l: { language: string; recipients: number }) => [l.language, l.recipients])));
    expect((await api('author', 'POST', `/broadcasts/${broadcastId}/send`, {})).status).toBe(409);

    expect(body(await api('author', 'POST', `/broadcasts/${broadcastId}/pause`)).held).toBe(40);
    expect(body(await api('author', 'POST', `/broadcasts/${broadcastId}/resume`)).released).toBe(40);
    expect(body(await api('author', 'POST', `/broadcasts/${broadcastId}/cancel`)).cancelled).toBe(40);
    const detail = body(await api('viewer', 'GET', `/broadcasts/${broadcastId}`));
    expect(detail).toMatchObject({ data: { status: 'cancelled' }, stats: { cancelled: 40, queued: 0 } });
    const list = body(await api('viewer', 'GET', '/broadcasts?limit=1'));
    expect(list.total).toBeGreaterThanOrEqual(1);
    expect(list.data).toHaveLength(1);
    const actions = (await t.db.knex('audit_events').where({ entity_type: 'broadcast', entity_id: String(broadcastId) }).orderBy('id').select('action')).map((a: { action: string }) => a.action);
    expect(actions).toEqual(['broadcast.create', 'broadcast.preview', 'broadcast.send', 'broadcast.pause', 'broadcast.resume', 'broadcast.cancel']);
  });

  it('schedules a broadcast for later and a weekly one; the job starts them when due', async () => {
    const later = body(await api('author', 'POST', '/broadcasts', { name: 'Más tarde', messageId, lists: [listId] })).data.id;
    const at = new Date(Math.ceil((Date.now() + 3_600_000) / 60_000) * 60_000); // recurrences keep the local hour and minute
    const scheduled = await api('author', 'POST', `/broadcasts/${later}/send`, { at: at.toISOString() });
    expect(body(scheduled).data).toMatchObject({ status: 'scheduled', sendAt: at.toISOString() });
    const past = await api('author', 'POST', `/broadcasts/${later}/send`, { at: new Date(Date.now() - 7_200_000).toISOString() });
    expect(past.status).toBe(400);

    const weekly = body(await api('author', 'POST', '/broadcasts', { name: 'Recordatorio', messageId, lists: [listId], recurrence: 'weekly' })).data.id;
    expect(body(await api('author', 'POST', `/broadcasts/${weekly}/send`, { at: at.toISOString() })).data).toMatchObject({ status: 'recurring', nextRunAt: at.toISOString() });

    expect(await runDueBroadcasts(t.db, t.config, undefined, new Date())).toMatchObject({ started: [], occurrences: [] });
    const due = await runDueBroadcasts(t.db, t.config, undefined, new Date(at.getTime() + 1_000));
    expect(due.started).toEqual([later]);
    expect(due.occurrences).toHaveLength(1);
    expect(Number((await t.db.knex('outbox').where('broadcast_id', later).count({ n: '*' }))[0].n)).toBe(40);
    const occ = body(await api('viewer', 'GET', `/broadcasts/${due.occurrences[0]}`)).data;
    expect(occ).toMatchObject({ status: 'sending', recipients: 40, recurrence: 'none' });
    const parent = body(await api('viewer', 'GET', `/broadcasts/${weekly}`)).data;
    expect(new Date(parent.nextRunAt).getTime() - at.getTime()).toBe(7 * 86_400_000);
    // Running again at the same time starts nothing twice.
    expect(await runDueBroadcasts(t.db, t.config, undefined, new Date(at.getTime() + 2_000))).toMatchObject({ started: [], occurrences: [] });
  });
});

/** Fails on a locale key shown instead of its text (a string missing from templates/console/locales). */
function translated(html: string): string {
  const raw = /[>\s"](?:broadcasts|messages|faq|topic)\.[a-zA-Z.]+[<\s"]/.exec(html.replace(/href="[^"]*"|action="[^"]*"|name="[^"]*"|id="[^"]*"|for="[^"]*"/g, ''));
  expect(raw?.[0] ?? null).toBeNull();
  return html;
}

describe('console', () => {
  it('takes a message from draft to approval and a broadcast from composer to preview to live stats', async () => {
    const author = new Client(t.url);
    expect((await author.login('author@example.org')).status).toBe(302);
    expect(translated((await author.get('/messages')).text_)).toContain('Key messages');
    translated((await author.get('/messages/new')).text_);
    const created = await author.submit('/messages/new', '/messages', { key: 'kits', title: 'Kits de higiene', topic: 'general', rumour: '', text_es: 'Hola {{name}}, reparto de kits el lunes.', text_en: '', media_kind: '', media_ref: '' });
    expect(created.status).toBe(302);
    const path = created.headers.get('location')!;
    const page = await author.get(path);
    translated(page.text_);
    expect(page.text_).toContain('Hola [name], reparto de kits el lunes.');
    expect(page.text_).toContain('segment');
    await author.submit(path, `${path}/submit`, {});
    const own = await author.get(path);
    expect(own.text_).not.toContain(`action="${path}/approve"`);

    const editor = new Client(t.url);
    await editor.login('editor@example.org');
    const reviewPage = await editor.get(path);
    expect(reviewPage.text_).toContain(`action="${path}/approve"`);
    expect((await editor.submit(path, `${path}/approve`, { version: '1' })).status).toBe(302);

    const compose = await author.get(`/broadcasts/new?message=${path.split('/').pop()}`);
    expect(compose.status).toBe(200);
    translated(compose.text_);
    expect(compose.text_).toContain('Kits de higiene');
    const bad = await author.submit('/broadcasts/new', '/broadcasts', { name: 'Kits', message_id: path.split('/').pop()!, channel_policy: 'whatsapp_then_sms', quiet_start: '20:00', quiet_end: '08:00', recurrence: 'none' });
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('choose at least one list or a segment');
    const made = await author.submit('/broadcasts/new', '/broadcasts', { name: 'Kits', message_id: path.split('/').pop()!, lists: String(listId), channel_policy: 'whatsapp_then_sms', quiet_off: 'true', footer_es: 'Nunca te pediremos dinero.', recurrence: 'none' });
    expect(made.status).toBe(302);
    const previewPath = made.headers.get('location')!;
    const preview = await author.get(previewPath);
    expect(preview.status).toBe(200);
    translated(preview.text_);
    expect(preview.text_).toContain('40 recipients');
    expect(preview.text_).toContain('Nunca te pediremos dinero.');
    const sent = await author.submit(previewPath, previewPath.replace('/preview', '/send'), {});
    expect(sent.status).toBe(302);
    const detail = await author.get(sent.headers.get('location')!);
    translated(detail.text_);
    expect(detail.text_).toContain('http-equiv="refresh"');
    expect(detail.text_).toContain('Sending');
    const paused = await author.submit(sent.headers.get('location')!, `${sent.headers.get('location')}/pause`, {});
    expect(paused.status).toBe(302);
    expect((await author.get(sent.headers.get('location')!)).text_).toContain('Paused');

    const viewer = new Client(t.url);
    await viewer.login('viewer@example.org');
    expect((await viewer.get('/broadcasts')).status).toBe(200);
    expect((await viewer.get('/messages')).status).toBe(403);
    expect((await viewer.get('/broadcasts/new')).status).toBe(403);
    translated((await author.get('/faq')).text_);
    translated((await author.get('/broadcasts')).text_);
  });
});

describe('CLI', () => {
  const ayni = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['bin/ayni.js', 'broadcasts', ...args], { env: { ...process.env, DATABASE_URL: t.test.url, AYNI_FROM_SOURCE: '1', LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };

  it('composes, previews, sends and reports a broadcast from the shell, with counts only', () => {
    const bad = ayni('create', '--name', 'x', '--message', 'vacunas', '--list', 'nope');
    expect(bad.status).toBe(2);
    expect(bad.err).toContain('There is no list with the key nope');
    const created = ayni('create', '--name', 'Desde la consola', '--message', 'vacunas', '--list', 'noticias', '--quiet', 'off', '--footer', 'es=Nunca te pediremos dinero.');
    expect(created.err).toBe('');
    const id = /draft broadcast (\d+)/.exec(created.out)![1];
    const preview = ayni('preview', id);
    expect(preview.out).toContain('Recipients: 40');
    expect(preview.out).not.toMatch(/Ana|Ann|\+51/);
    expect(ayni('send', id).out).toContain('sending to 40 recipients');
    const stats = ayni('stats', id);
    expect(stats.out).toContain('total 40  queued 40');
    expect(ayni('cancel', id).out).toContain('cancelled (40 messages)');
  }, 300_000); // six processes, each starting TypeScript from source
});
