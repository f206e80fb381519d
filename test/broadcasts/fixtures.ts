/** Contacts, lists and approved key messages for the broadcasts tests, inserted directly. */
import type { Database, Knex } from '../../src/db/orm.js';
import { toInt } from '../../src/db/values.js';
import type { Actor } from '../../src/staff/audit.js';
import { approveMessage, createMessage, submitMessage, type KeyMessage } from '../../src/broadcasts/messages.js';
import { createUser } from '../../src/staff/service.js';
import { SYSTEM } from '../../src/staff/audit.js';

const id = (row: unknown) => toInt(typeof row === 'object' && row !== null ? (row as { id: unknown }).id : row);

let phoneSeq = 0;
export function nextPhone(): string {
  phoneSeq++;
  return `+5198${String(7_000_000 + phoneSeq).padStart(7, '0')}`;
}

export interface PersonInput {
  name?: string | null;
  language?: string | null;
  timezone?: string | null;
  status?: 'active' | 'stopped' | 'blocked';
  /** Channels with an address (default whatsapp and sms, the same number). */
  channels?: ('whatsapp' | 'sms')[];
  /** Last inbound on WhatsApp (opens the 24-hour window); default: an hour ago. null: never. */
  lastInbound?: Date | null;
  consents?: string[];
  lists?: number[];
  fields?: Record<string, string | number>;
}

export interface Person {
  id: number;
  phone: string;
}

export async function addPerson(knex: Knex, p: PersonInput = {}): Promise<Person> {
  const now = new Date();
  const phone = nextPhone();
  const [c] = await knex('contacts')
    .insert({
      name: p.name === undefined ? 'Ana' : p.name,
      language: p.language === undefined ? 'es' : p.language,
      timezone: p.timezone ?? null,
      status: p.status ?? 'active',
      stopped_at: p.status === 'stopped' ? now : null,
      fields: p.fields ? JSON.stringify(p.fields) : null,
      created_at: now,
      updated_at: now,
    })
    .returning('id');
  const contactId = id(c);
  const lastInbound = p.lastInbound === undefined ? new Date(now.getTime() - 3_600_000) : p.lastInbound;
  for (const ch of p.channels ?? ['whatsapp', 'sms']) {
    await knex('contact_addresses').insert({ contact_id: contactId, channel: ch, kind: 'phone', address: phone, opted_out: false, last_inbound_at: ch === 'whatsapp' ? lastInbound : null, created_at: now });
  }
  for (const purpose of p.consents ?? ['updates']) {
    const [row] = await knex('consents').insert({ contact_id: contactId, purpose, action: 'grant', legal_basis: 'consent', channel: 'import', method: 'import', evidence_type: 'import', evidence_ref: 'test', proxy: false, at: now }).returning('id');
    await knex('consent_state').insert({ contact_id: contactId, purpose, granted: true, consent_id: id(row), at: now });
  }
  for (const listId of p.lists ?? []) {
    await knex('subscriptions').insert({ list_id: listId, contact_id: contactId, status: 'active', channel: 'whatsapp', joined_at: now });
  }
  return { id: contactId, phone };
}

/** `count` people alike, inserted a few hundred per statement. */
export async function addPeople(knex: Knex, count: number, p: PersonInput = {}): Promise<Person[]> {
  const now = new Date();
  const out: Person[] = [];
  const lastInbound = p.lastInbound === undefined ? new Date(now.getTime() - 3_600_000) : p.lastInbound;
  for (let start = 0; start < count; start += 200) {
    const n = Math.min(200, count - start);
    const phones = Array.from({ length: n }, () => nextPhone());
    const ids = (
      await knex('contacts')
        .insert(phones.map(() => ({ name: p.name === undefined ? 'Ana' : p.name, language: p.language === undefined ? 'es' : p.language, timezone: p.timezone ?? null, status: p.status ?? 'active', fields: p.fields ? JSON.stringify(p.fields) : null, created_at: now, updated_at: now })))
        .returning('id')
    ).map(id);
    for (const ch of p.channels ?? ['whatsapp', 'sms']) {
      await knex('contact_addresses').insert(ids.map((contactId, i) => ({ contact_id: contactId, channel: ch, kind: 'phone', address: phones[i], opted_out: false, last_inbound_at: ch === 'whatsapp' ? lastInbound : null, created_at: now })));
    }
    for (const purpose of p.consents ?? ['updates']) {
      const consentIds = (await knex('consents').insert(ids.map((contactId) => ({ contact_id: contactId, purpose, action: 'grant', legal_basis: 'consent', channel: 'import', method: 'import', evidence_type: 'import', evidence_ref: 'test', proxy: false, at: now }))).returning('id')).map(id);
      await knex('consent_state').insert(ids.map((contactId, i) => ({ contact_id: contactId, purpose, granted: true, consent_id: consentIds[i], at: now })));
    }
    for (const listId of p.lists ?? []) {
      await knex('subscriptions').insert(ids.map((contactId) => ({ list_id: listId, contact_id: contactId, status: 'active', channel: 'whatsapp', joined_at: now })));
    }
    out.push(...ids.map((contactId, i) => ({ id: contactId, phone: phones[i] })));
  }
  return out;
}

export async function addList(knex: Knex, key: string, defaultLanguage = 'es'): Promise<number> {
  const now = new Date();
  const [row] = await knex('lists').insert({ key, name: key, purpose: 'updates', default_language: defaultLanguage, double_opt_in: false, is_default: false, created_at: now, updated_at: now }).returning('id');
  return id(row);
}

export interface Staff {
  author: Actor;
  reviewer: Actor;
}

/** Two staff users: an author (broadcaster) and a reviewer (editor), as actors. */
export async function staff(db: Database, suffix = ''): Promise<Staff> {
  const a = await createUser(db, SYSTEM, { email: `author${suffix}@example.org`, name: 'Author', role: 'broadcaster', password: 'correct horse battery staple' });
  const r = await createUser(db, SYSTEM, { email: `reviewer${suffix}@example.org`, name: 'Reviewer', role: 'editor', password: 'correct horse battery staple' });
  return {
    author: { type: 'staff', id: a.user.id, userId: a.user.id, label: a.user.email, role: 'broadcaster' },
    reviewer: { type: 'staff', id: r.user.id, userId: r.user.id, label: r.user.email, role: 'editor' },
  };
}

let keySeq = 0;
/** A key message written by `author`, submitted and approved by `reviewer`. */
export async function approvedMessage(db: Database, s: Staff, variants: Record<string, { text: string; template?: { name: string; language: string; params: string[] } }>, extra: { media?: { kind: 'image' | 'document' | 'audio'; url: string } } = {}): Promise<KeyMessage> {
  keySeq++;
  const m = await createMessage(db, s.author, { key: `msg-${keySeq}`, title: `Message ${keySeq}`, topic: 'health', variants, media: extra.media ?? null });
  await submitMessage(db, s.author, m.id);
  return approveMessage(db, s.reviewer, m.id);
}
