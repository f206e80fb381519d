/**
 * Contacts, fields, lists and data-subject rights over HTTP: who may see personal data (a viewer
 * sees lists and counts only), validation errors that name the field, audit events on every read,
 * export and erasure with its tombstone; and the console pages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaults } from '../../src/contacts/lists.js';
import { isTombstoned } from '../../src/contacts/pseudonyms.js';
import { SUBJECT_ACCESS_HOOKS } from '../../src/contacts/access-hooks.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import { createLogger } from '../../src/log.js';
import { SYSTEM } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { createToken } from '../../src/staff/service.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const tokens = {} as Record<Role, string>;
beforeAll(async () => {
  t = await startTestApp({ PROGRAMME_NAME: 'Línea Amiga' });
  await ensureDefaults(t.db, t.config);
  for (const role of ['admin', 'editor', 'viewer'] as Role[]) {
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `${role} token`, role })).secret;
    await makeUser(t.db, role);
  }
});
afterAll(() => t?.close());

const api = (role: Role, method: string, path: string, json?: unknown) =>
  new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[role]}` }, json });
const body = (r: { text_: string }) => JSON.parse(r.text_);

let contactId: number;

describe('contacts API', () => {
  it('refuses an invalid number with the reason, and an invalid field value naming the field; nothing is created', async () => {
    const field = await api('admin', 'POST', '/contact-fields', { key: 'region', label: 'Region', type: 'choice', choices: ['Lima', 'Tumbes', 'Piura'] });
    expect(field.status).toBe(201);
    expect((await api('admin', 'POST', '/contact-fields', { key: 'household_size', label: 'Household size', type: 'number' })).status).toBe(201);
    const badField = await api('admin', 'POST', '/contact-fields', { key: 'age', label: 'Age', type: 'choice' });
    expect(badField.status).toBe(400);
    expect(body(badField).error.details).toHaveProperty(['body.choices']);

    const badNumber = await api('admin', 'POST', '/contacts', { name: 'Ana', addresses: [{ medium: 'sms', address: '12345' }] });
    expect(badNumber.status).toBe(400);
    expect(body(badNumber).error.details['addresses.0.address']).toMatch(/digits|not a valid|not possible/);
    const badValue = await api('admin', 'POST', '/contacts', { name: 'Ana', addresses: [{ medium: 'sms', address: '987 654 321' }], fields: { region: 'Cusco', household_size: 'four' } });
    expect(badValue.status).toBe(400);
    expect(body(badValue).error.details['fields.region']).toContain('"Cusco" is not one of Lima, Tumbes, Piura');
    expect(body(badValue).error.details['fields.household_size']).toContain('not a number');
    const unknown = await api('admin', 'POST', '/contacts', { fields: { regoin: 'Lima' } });
    expect(body(unknown).error.details['fields.regoin']).toContain('there is no contact field "regoin"');
    expect(Number((await t.db.knex('contacts').count({ n: '*' }).first())!.n)).toBe(0);
  });

  it('creates a contact, normalising a 00-prefixed number and a local one to E.164', async () => {
    const r = await api('admin', 'POST', '/contacts', {
      name: 'Ana Quispe', language: 'es', timezone: 'America/Lima',
      addresses: [{ medium: 'whatsapp', address: '0051 987 654 321' }, { medium: 'sms', address: '987-654-321' }, { medium: 'whatsapp', kind: 'wa_user', address: 'PE.1234567890123' }],
      fields: { region: 'lima', household_size: '4' },
    });
    expect(r.status).toBe(201);
    const c = body(r).data;
    contactId = c.id;
    expect(c.addresses.map((a: { address: string }) => a.address)).toEqual(['+51987654321', '+51987654321', 'PE.1234567890123']);
    expect(c.fields).toEqual({ region: 'Lima', household_size: 4 });
    const dup = await api('admin', 'POST', '/contacts', { addresses: [{ medium: 'sms', address: '+51 987 654 321' }] });
    expect(dup.status).toBe(409);
    expect(body(dup).error.details['addresses.0.address']).toContain(`contact ${contactId}`);
  });

  it('a viewer sees lists and counts but no contact, no number, no name', async () => {
    for (const path of ['/contacts', `/contacts/${contactId}`, `/contacts/${contactId}/consents`, `/contacts/${contactId}/export`, '/contact-fields']) {
      expect((await api('viewer', 'GET', path)).status, path).toBe(403);
    }
    const lists = await api('viewer', 'GET', '/lists');
    expect(lists.status).toBe(200);
    expect(lists.text_).not.toContain('987654321');
    expect(lists.text_).not.toContain('Ana');
    expect(body(lists).data[0]).toMatchObject({ key: 'updates', isDefault: true, subscribers: 0 });
    expect((await api('viewer', 'POST', '/lists', { key: 'x', name: 'X', defaultLanguage: 'es' })).status).toBe(403);
  });

  it('an editor reads contacts (audited), manages lists, but cannot change or erase a contact', async () => {
    const search = await api('editor', 'GET', '/contacts?q=987654321');
    expect(search.status).toBe(200);
    expect(body(search).data.map((c: { id: number }) => c.id)).toEqual([contactId]);
    expect(body(await api('editor', 'GET', '/contacts?q=quisp')).data).toHaveLength(1);
    expect(body(await api('editor', 'GET', '/contacts?q=nobody')).data).toHaveLength(0);
    const one = await api('editor', 'GET', `/contacts/${contactId}`);
    expect(one.status).toBe(200);
    expect(body(one).data).toMatchObject({ name: 'Ana Quispe', consents: [], subscriptions: [] });
    const audits = await t.db.knex('audit_events').where({ action: 'contact.read', entity_id: String(contactId) });
    expect(audits).toHaveLength(1);
    expect(JSON.stringify(await t.db.knex('audit_events').select('detail'))).not.toContain('987654321');
    expect((await api('editor', 'PATCH', `/contacts/${contactId}`, { name: 'X' })).status).toBe(403);
    expect((await api('editor', 'POST', `/contacts/${contactId}/erase`, { confirm: true })).status).toBe(403);
    const list = await api('editor', 'POST', '/lists', { key: 'salud', name: 'Salud', keywords: { es: ['salud'], en: ['health'] }, defaultLanguage: 'es', frequency: { es: 'cada semana' } });
    expect(list.status).toBe(201);
    expect(body(list).data.keywords).toEqual({ es: ['SALUD'], en: ['HEALTH'] });
    const clash = await api('editor', 'POST', '/lists', { key: 'otra', name: 'Otra', keywords: { es: ['Salud'] }, defaultLanguage: 'es' });
    expect(clash.status).toBe(400);
    expect(body(clash).error.details['keywords.es']).toContain('already a keyword of the list "salud"');
    const reserved = await api('editor', 'POST', '/lists', { key: 'otra', name: 'Otra', keywords: { en: ['stop'] }, defaultLanguage: 'en' });
    expect(body(reserved).error.details['keywords.en']).toContain('reserved');
  });

  it('rectifies fields and records an operator consent, append-only', async () => {
    const r = await api('admin', 'PATCH', `/contacts/${contactId}`, { fields: { region: 'Tumbes', household_size: null } });
    expect(r.status).toBe(200);
    expect(body(r).data.fields).toEqual({ region: 'Tumbes' });
    const bad = await api('admin', 'PATCH', `/contacts/${contactId}`, { language: 'not a language' });
    expect(body(bad).error.details['body.language']).toMatch(/BCP 47/);
    const g = await api('admin', 'POST', `/contacts/${contactId}/consents`, { purpose: 'surveys', action: 'grant', channel: 'phone' });
    expect(g.status).toBe(201);
    expect(body(g).data).toMatchObject({ method: 'operator', evidenceType: 'staff', purpose: 'surveys' });
    await api('admin', 'POST', `/contacts/${contactId}/consents`, { purpose: 'surveys', action: 'withdraw', channel: 'phone' });
    const consents = body(await api('admin', 'GET', `/contacts/${contactId}/consents`)).data;
    expect(consents.history.map((h: { action: string }) => h.action)).toEqual(['grant', 'withdraw']);
    expect(consents.current).toMatchObject([{ purpose: 'surveys', granted: false }]);
  });

  it('exports everything held as JSON, then erases: personal data gone, ledger and counts kept, number tombstoned', async () => {
    const services = { config: t.config, db: t.db, log: createLogger('silent') };
    await receive(services, ROUTER_STEPS, [{ channel: 'simulator', medium: 'sms', providerId: 'api-1', from: '+51987654321', fromKind: 'phone', kind: 'text', text: 'hola, necesito ayuda con mi documento', receivedAt: new Date() }]);
    SUBJECT_ACCESS_HOOKS.push({ domain: 'surveys', collect: async (_knex, id) => ({ answersOf: id }) });
    const exp = await api('admin', 'GET', `/contacts/${contactId}/export`).finally(() => SUBJECT_ACCESS_HOOKS.pop());
    expect(exp.status).toBe(200);
    expect(exp.headers.get('content-disposition')).toContain(`contact-${contactId}.json`);
    const data = body(exp);
    expect(data.contact.name).toBe('Ana Quispe');
    expect(data.inboundMessages.map((m: { text: string }) => m.text)).toContain('hola, necesito ayuda con mi documento');
    expect(data.consents.history).toHaveLength(2);
    expect(data.outbox.length).toBeGreaterThan(0);
    expect(data.domains).toEqual({ surveys: { answersOf: contactId } });
    expect(await t.db.knex('audit_events').where({ action: 'contact.export', entity_id: String(contactId) }).first()).toBeTruthy();

    expect((await api('admin', 'POST', `/contacts/${contactId}/erase`, {})).status).toBe(400);
    const erased = await api('admin', 'POST', `/contacts/${contactId}/erase`, { confirm: true });
    expect(erased.status).toBe(200);
    expect(body(erased).data).toMatchObject({ addresses: 3 });
    const after = body(await api('admin', 'GET', `/contacts/${contactId}`)).data;
    expect(after).toMatchObject({ name: null, fields: {}, addresses: [], status: 'stopped' });
    expect(after.erasedAt).not.toBeNull();
    const rows = await t.db.knex('inbound_messages').where('contact_id', contactId);
    expect(rows).toHaveLength(1);
    expect(rows[0].text).toBeNull();
    expect(Number((await t.db.knex('consents').where('contact_id', contactId).count({ n: '*' }).first())!.n)).toBe(2);
    expect(await isTombstoned(t.db.knex, '+51987654321')).toBe(true);
    expect(await isTombstoned(t.db.knex, 'PE.1234567890123')).toBe(true);
    expect(await isTombstoned(t.db.knex, '+51987654322')).toBe(false);
    expect((await api('admin', 'POST', `/contacts/${contactId}/erase`, { confirm: true })).status).toBe(409);
    expect(await t.db.knex('audit_events').where({ action: 'contact.erase', entity_id: String(contactId) }).first()).toBeTruthy();
  });
});

describe('console pages', () => {
  it('an editor searches contacts and opens one with its consent history and subscriptions', async () => {
    const services = { config: t.config, db: t.db, log: createLogger('silent') };
    const at = new Date();
    await receive(services, ROUTER_STEPS, [{ channel: 'simulator', medium: 'sms', providerId: 'con-1', from: '+51911222333', fromKind: 'phone', kind: 'text', text: 'UNIRSE', receivedAt: at }]);
    await receive(services, ROUTER_STEPS, [{ channel: 'simulator', medium: 'sms', providerId: 'con-2', from: '+51911222333', fromKind: 'phone', kind: 'text', text: 'SI', receivedAt: at }]);
    const c = new Client(t.url);
    await c.login('editor@example.org');
    const list = await c.get('/contacts?q=911222333');
    expect(list.status).toBe(200);
    expect(list.text_).toContain('+51911222333');
    const id = /href="\/contacts\/(\d+)"/.exec(list.text_)![1];
    const page = await c.get(`/contacts/${id}`);
    expect(page.status).toBe(200);
    expect(page.text_).toContain('consent-prompt');
    expect(page.text_).toContain('Novedades de Línea Amiga');
    expect(page.text_).not.toContain('action="/contacts/' + id + '/erase"'); // no erase form without contacts.erase
    const lists = await c.get('/lists');
    expect(lists.text_).toMatch(/Novedades de Línea Amiga[\s\S]*?<td>1<\/td>/);
  });

  it('a viewer gets no contacts page but sees lists', async () => {
    const c = new Client(t.url);
    await c.login('viewer@example.org');
    expect((await c.get('/contacts')).status).toBe(403);
    expect((await c.get('/lists')).status).toBe(200);
    const home = await c.get('/');
    expect(home.text_).not.toContain('href="/contacts"');
  });

  it('an admin creates a list from the console; a bad keyword re-shows the form with the field named', async () => {
    const c = new Client(t.url);
    await c.login('admin@example.org');
    const bad = await c.submit('/lists', '/lists', { key: 'cash', name: 'Cash', purpose: 'cash_programme', double_opt_in: 'true', default_language: 'es', keywords_es: 'BAJA' });
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('keywords.es');
    const ok = await c.submit('/lists', '/lists', { key: 'cash', name: 'Cash', purpose: 'cash_programme', double_opt_in: 'false', default_language: 'es', keywords_es: 'EFECTIVO', frequency_es: 'una vez al mes' });
    expect(ok.status).toBe(302);
    const row = await t.db.knex('lists').where('key', 'cash').first();
    expect(row).toMatchObject({ purpose: 'cash_programme' });
    expect(Boolean(row.double_opt_in)).toBe(false);
    const page = await c.get(ok.headers.get('location')!);
    expect(page.text_).toContain('value="EFECTIVO"');
    const field = await c.submit('/contact-fields', '/contact-fields', { key: 'gender', label: 'Gender', type: 'choice', choices: 'female\nmale\nother' });
    expect(field.status).toBe(302);
    expect((await c.get('/contact-fields')).text_).toContain('female, male, other');
  });
});
