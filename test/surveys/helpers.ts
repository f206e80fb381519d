/** Contacts, conversations over the simulator and outbox reading for the survey tests. */
import { createContact } from '../../src/contacts/contacts.js';
import { recordConsent } from '../../src/contacts/consent.js';
import { receive } from '../../src/messaging/inbound.js';
import { outboxFor, type OutboxRow } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { Medium, OutboundContent, ParsedInbound, RouterServices } from '../../src/messaging/types.js';
import { toInt } from '../../src/db/values.js';

let seq = 0;

export interface TestContact {
  id: number;
  phone: string;
  medium: Medium;
}

/** A contact with one address, consenting to surveys unless told otherwise. */
export async function makeContact(s: RouterServices, opts: { phone?: string; medium?: Medium; language?: string | null; consent?: boolean; both?: boolean } = {}): Promise<TestContact> {
  const phone = opts.phone ?? `+5198${String(7000000 + ++seq).padStart(7, '0')}`;
  const medium = opts.medium ?? 'sms';
  const addresses = opts.both ? [{ medium: 'sms' as const, address: phone }, { medium: 'whatsapp' as const, address: phone }] : [{ medium, address: phone }];
  const c = await createContact(s.db.knex, 'PE', { language: opts.language === undefined ? 'es' : opts.language, addresses });
  if (opts.consent !== false) {
    await recordConsent(s.db.knex, { contactId: c.id, purpose: 'surveys', action: 'grant', method: 'import', channel: 'import', evidence: { type: 'import', ref: 'test' } });
  }
  return { id: c.id, phone, medium };
}

/** What the person sends: text, or a tapped WhatsApp button / list row. */
export type Said = string | { payload: string; title: string };

export function inbound(c: TestContact, said: Said, medium: Medium = c.medium): ParsedInbound {
  const id = `t${Date.now()}-${++seq}`;
  if (typeof said === 'string') {
    return { channel: 'simulator', medium, providerId: id, from: c.phone, fromKind: 'phone', kind: 'text', text: said, receivedAt: new Date() };
  }
  return { channel: 'simulator', medium, providerId: id, from: c.phone, fromKind: 'phone', kind: said.payload.includes(':') ? 'button' : 'list', text: said.title, payload: said.payload, receivedAt: new Date() };
}

/** Sends one message through the real pipeline; returns the route and what was queued in reply. */
export async function say(s: RouterServices, c: TestContact, said: Said, medium: Medium = c.medium): Promise<{ route: string; out: OutboxRow[] }> {
  const before = await maxOutbox(s, c.id);
  const r = await receive(s, ROUTER_STEPS, [inbound(c, said, medium)]);
  return { route: r.routes[0], out: (await outboxFor(s.db.knex, c.id)).filter((o) => o.id > before) };
}

export async function maxOutbox(s: RouterServices, contactId: number): Promise<number> {
  const row = await s.db.knex('outbox').where('contact_id', contactId).max({ m: 'id' }).first();
  return toInt(row?.m ?? 0);
}

export async function newOutbox(s: RouterServices, contactId: number, after: number): Promise<OutboxRow[]> {
  return (await outboxFor(s.db.knex, contactId)).filter((o) => o.id > after);
}

/** The text a person reads, whatever the content type. */
export function textOf(c: OutboundContent | null): string {
  if (!c) return '';
  return c.text;
}

/** The answers stored for a session, by question. */
export async function answersOf(s: RouterServices, sessionId: number): Promise<Record<string, Record<string, unknown>>> {
  const rows = await s.db.knex('survey_answers').where('session_id', sessionId);
  const out: Record<string, Record<string, unknown>> = {};
  for (const r of rows) out[r.question] = r;
  return out;
}

export async function sessionOf(s: RouterServices, contactId: number): Promise<Record<string, unknown>> {
  return s.db.knex('survey_sessions').where('contact_id', contactId).orderBy('id', 'desc').first();
}
