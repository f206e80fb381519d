/**
 * The contacts domain's service functions on their own: keywords, field validation, the consent
 * ledger (append-only, derived state), provider opt-outs, tombstones, WhatsApp username users,
 * template data and start-up defaults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { consentHistory, currentConsents, hasConsent, recordConsent } from '../../src/contacts/consent.js';
import { contactTemplateData, createContact, getContact } from '../../src/contacts/contacts.js';
import { checkValue, createField } from '../../src/contacts/fields.js';
import { normaliseKeyword, parseGlobal, parseJoin, parseYesNo } from '../../src/contacts/keywords.js';
import { ensureDefaults, listLists, subscriptionsOf } from '../../src/contacts/lists.js';
import { addressHash, configurePseudonyms, isTombstoned } from '../../src/contacts/pseudonyms.js';
import { eraseContact } from '../../src/contacts/rights.js';
import { stopOnChannel } from '../../src/contacts/stop.js';
import { receive } from '../../src/messaging/inbound.js';
import { enqueue, outboxFor } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices();
  await ensureDefaults(s.db, s.config);
});
afterAll(() => s?.close());

let seq = 0;
const msg = (medium: 'sms' | 'whatsapp', from: string, text: string, fromKind: 'phone' | 'wa_user' = 'phone'): ParsedInbound => ({
  channel: medium === 'sms' ? 'simulator' : 'whatsapp', medium, providerId: `svc-${++seq}`, from, fromKind, kind: 'text', text, receivedAt: new Date(),
});

describe('keywords', () => {
  it('normalises case, accents, punctuation and spacing', () => {
    expect(normaliseKeyword('  Arrêt! ')).toBe('ARRET');
    expect(normaliseKeyword('sí')).toBe('SI');
    expect(normaliseKeyword('join   noticias')).toBe('JOIN NOTICIAS');
    expect(normaliseKeyword('Opt-Out')).toBe('OPTOUT');
    expect(normaliseKeyword('🙏 stop 🙏')).toBe('STOP');
  });
  it('tells commands from sentences', () => {
    expect(parseGlobal('Baja')).toEqual({ kind: 'stop', lang: 'es' });
    expect(parseGlobal('please stop sending')).toBeNull();
    expect(parseGlobal('UNSTOP')).toMatchObject({ kind: 'start' });
    expect(parseGlobal('Ajuda')).toEqual({ kind: 'help', lang: 'pt' });
    expect(parseGlobal('Português')).toEqual({ kind: 'language', language: 'pt' });
    expect(parseGlobal('FRANÇAIS')).toEqual({ kind: 'language', language: 'fr' });
    expect(parseGlobal('idioma español')).toEqual({ kind: 'language', language: 'es' });
    expect(parseGlobal('LANG es')).toEqual({ kind: 'language', language: 'es' });
    expect(parseYesNo('Sim')).toBe('yes');
    expect(parseYesNo('não')).toBe('no');
    expect(parseYesNo('yes please')).toBeNull();
    expect(parseJoin('rejoindre infos')).toEqual({ lang: 'fr', keyword: 'INFOS' });
    expect(parseJoin('joined')).toBeNull();
    expect(parseJoin('Entrar en contacto con ustedes')).toBeNull();
    expect(parseJoin('join us tomorrow')).toBeNull();
  });
});

describe('custom fields', () => {
  const def = (type: 'text' | 'number' | 'date' | 'choice', choices: string[] | null = null) => ({ id: 1, key: 'k', label: 'K', type, choices, createdAt: '' });
  it('checks each type and says why a value is refused', () => {
    expect(checkValue(def('date'), '2024-02-29')).toEqual({ ok: true, value: '2024-02-29' });
    expect(checkValue(def('date'), '2023-02-29')).toMatchObject({ ok: false, reason: expect.stringContaining('YYYY-MM-DD') });
    expect(checkValue(def('date'), '29/02/2024')).toMatchObject({ ok: false });
    expect(checkValue(def('number'), ' 12.5 ')).toEqual({ ok: true, value: 12.5 });
    expect(checkValue(def('number'), '12a')).toMatchObject({ ok: false, reason: expect.stringContaining('not a number') });
    expect(checkValue(def('choice', ['Lima', 'Tumbes']), 'tumbes')).toEqual({ ok: true, value: 'Tumbes' });
    expect(checkValue(def('text'), 'x'.repeat(501))).toMatchObject({ ok: false });
  });
  it('refuses a field key that clashes with a built-in attribute', async () => {
    await expect(createField(s.db.knex, { key: 'language', label: 'L', type: 'text' })).rejects.toThrow();
  });
  it('gives templates the contact’s name, language and fields', async () => {
    await createField(s.db.knex, { key: 'district', label: 'District', type: 'text' });
    const c = await createContact(s.db.knex, 'PE', { name: 'Rosa', language: 'es', fields: { district: 'Comas' } });
    expect(await contactTemplateData(s.db.knex, c.id)).toEqual({ name: 'Rosa', language: 'es', timezone: null, fields: { district: 'Comas' } });
  });
});

describe('consent ledger', () => {
  it('appends rows, derives the current state from the latest act, and never lets a back-dated row win', async () => {
    const c = await createContact(s.db.knex, 'PE', {});
    const ev = { type: 'staff' as const, ref: 'staff 1' };
    await recordConsent(s.db.knex, { contactId: c.id, purpose: 'cash_programme', action: 'grant', method: 'operator', evidence: ev, at: new Date('2026-01-10') });
    expect(await hasConsent(s.db.knex, c.id, 'cash_programme')).toBe(true);
    await recordConsent(s.db.knex, { contactId: c.id, purpose: 'cash_programme', action: 'withdraw', method: 'operator', evidence: ev, at: new Date('2026-02-10') });
    expect(await hasConsent(s.db.knex, c.id, 'cash_programme')).toBe(false);
    // An import stating an older grant does not override the newer withdrawal…
    await recordConsent(s.db.knex, { contactId: c.id, purpose: 'cash_programme', action: 'grant', method: 'import', legalBasis: 'legitimate_interest', evidence: { type: 'import', ref: 'import:7 beneficiaries.csv' }, at: new Date('2026-01-01') });
    expect(await hasConsent(s.db.knex, c.id, 'cash_programme')).toBe(false);
    // …and every act stays in the ledger.
    expect((await consentHistory(s.db.knex, c.id)).map((r) => r.action)).toEqual(['grant', 'grant', 'withdraw']);
    expect(await currentConsents(s.db.knex, c.id)).toMatchObject([{ purpose: 'cash_programme', granted: false, method: 'operator' }]);
  });
  it('refuses a grant without evidence and a purpose it does not know, naming the field', async () => {
    const c = await createContact(s.db.knex, 'PE', {});
    await expect(recordConsent(s.db.knex, { contactId: c.id, purpose: 'updates', action: 'grant', method: 'keyword' })).rejects.toMatchObject({ details: { 'consent.evidence': expect.any(String) } });
    await expect(recordConsent(s.db.knex, { contactId: c.id, purpose: 'marketing' as 'updates', action: 'grant', method: 'keyword', evidence: { type: 'staff', ref: 'x' } })).rejects.toMatchObject({ details: { 'consent.purpose': expect.any(String) } });
    expect(await consentHistory(s.db.knex, c.id)).toEqual([]);
  });
});

describe('provider opt-out', () => {
  it('marks the address; stops the contact only when no other usable address is left', async () => {
    const phone = '+51955000111';
    await receive(s, ROUTER_STEPS, [msg('sms', phone, 'JOIN')]);
    await receive(s, ROUTER_STEPS, [msg('sms', phone, 'YES')]);
    await receive(s, ROUTER_STEPS, [msg('whatsapp', phone, 'hola')]); // same person on WhatsApp: same contact
    const contact = (await s.db.knex('contact_addresses').where({ address: phone, channel: 'sms' }).first()).contact_id as number;
    const wa = await s.db.knex('contact_addresses').where({ address: phone, channel: 'whatsapp' }).first();
    expect(wa.contact_id).toBe(contact);
    const fixed = await enqueue(s.db.knex, { contactId: contact, purpose: 'updates', content: { type: 'text', text: 'x' }, channel: 'whatsapp', addressId: wa.id });

    const first = await stopOnChannel(s.db.knex, 'whatsapp', phone, 'whatsapp 131050 wamid.X');
    expect(first).toEqual({ found: true, contactId: contact, contactStopped: false });
    expect((await getContact(s.db.knex, contact))!.status).toBe('active');
    expect(await hasConsent(s.db.knex, contact, 'updates')).toBe(true);
    expect((await outboxFor(s.db.knex, contact)).find((o) => o.id === fixed)?.status).toBe('cancelled');

    const second = await stopOnChannel(s.db.knex, 'sms', phone, 'twilio 21610 SM123');
    expect(second).toEqual({ found: true, contactId: contact, contactStopped: true });
    const after = (await getContact(s.db.knex, contact))!;
    expect(after.status).toBe('stopped');
    expect(after.addresses.every((a) => a.optedOut)).toBe(true);
    expect(await hasConsent(s.db.knex, contact, 'updates')).toBe(false);
    const last = (await consentHistory(s.db.knex, contact)).pop()!;
    expect(last).toMatchObject({ action: 'withdraw', method: 'provider', evidenceType: 'provider_signal', evidenceRef: 'twilio 21610 SM123', channel: 'sms' });
    expect((await subscriptionsOf(s.db.knex, contact))[0]).toMatchObject({ status: 'ended', endedReason: 'stop' });

    expect(await stopOnChannel(s.db.knex, 'sms', '+51955000999', 'twilio 21610 SM9')).toEqual({ found: false, contactId: null, contactStopped: false });
  });
});

describe('WhatsApp username users and tombstones', () => {
  it('a user known only by Meta’s user id can join; erasing leaves a tombstone that fresh consent lifts', async () => {
    const userId = 'PE.8812345678901234';
    await receive(s, ROUTER_STEPS, [msg('whatsapp', userId, 'unirse', 'wa_user')]);
    const addr = await s.db.knex('contact_addresses').where({ address: userId }).first();
    expect(addr.kind).toBe('wa_user');
    await receive(s, ROUTER_STEPS, [msg('whatsapp', userId, 'sí', 'wa_user')]);
    expect(await hasConsent(s.db.knex, addr.contact_id, 'updates')).toBe(true);

    expect(await isTombstoned(s.db.knex, userId)).toBe(false);
    await eraseContact(s.db, SYSTEM, addr.contact_id);
    expect(await isTombstoned(s.db.knex, userId)).toBe(true);
    const tomb = await s.db.knex('erasure_tombstones').select('address_hash');
    expect(JSON.stringify(tomb)).not.toContain('8812345678901234');

    // The same person writes again and joins with a fresh YES: a new contact, and the tombstone goes.
    await receive(s, ROUTER_STEPS, [msg('whatsapp', userId, 'JOIN', 'wa_user')]);
    await receive(s, ROUTER_STEPS, [msg('whatsapp', userId, 'YES', 'wa_user')]);
    const again = await s.db.knex('contact_addresses').where({ address: userId }).first();
    expect(again.contact_id).not.toBe(addr.contact_id);
    expect(await isTombstoned(s.db.knex, userId)).toBe(false);
  });

  it('hashes with PSEUDONYM_KEY when configured; production requires it', async () => {
    const generated = await addressHash(s.db.knex, '+51911111111');
    expect(await addressHash(s.db.knex, '+51911111111')).toBe(generated);
    configurePseudonyms({ PSEUDONYM_KEY: 'k'.repeat(40), NODE_ENV: 'test' });
    try {
      expect(await addressHash(s.db.knex, '+51911111111')).not.toBe(generated);
    } finally {
      configurePseudonyms({ PSEUDONYM_KEY: undefined, NODE_ENV: 'test' });
    }
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        return e.problems;
      }
    };
    expect(problems({ NODE_ENV: 'production' }).filter((p) => p.startsWith('PSEUDONYM_KEY:'))).toHaveLength(1);
    expect(problems({ NODE_ENV: 'production', PSEUDONYM_KEY: 'short' }).filter((p) => p.startsWith('PSEUDONYM_KEY:'))).toEqual(['PSEUDONYM_KEY: must be at least 32 characters']);
    expect(problems({ NODE_ENV: 'production', PSEUDONYM_KEY: 'x'.repeat(32) }).filter((p) => p.startsWith('PSEUDONYM_KEY:'))).toEqual([]);
    expect(problems({}).filter((p) => p.startsWith('PSEUDONYM_KEY:'))).toEqual([]);
  });
});

describe('start-up defaults', () => {
  it('creates one default list, once', async () => {
    await ensureDefaults(s.db, s.config);
    await ensureDefaults(s.db, s.config);
    const lists = await listLists(s.db.knex, { includeArchived: true });
    expect(lists.filter((l) => l.isDefault)).toHaveLength(1);
    expect(lists.filter((l) => l.key === 'updates')).toHaveLength(1);
  });
});
