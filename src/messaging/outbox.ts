/**
 * The outbox: every outbound message, whatever caused it, is a row here first. Domains call
 * `enqueue`; the dispatcher sends. Content is JSON; broadcasts leave it empty and are rendered
 * at send time from the broadcast's message version and the contact's language.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import type { OutboundContent, Purpose } from './types.js';
import { PRIORITY } from './types.js';

export interface EnqueueInput {
  contactId: number;
  purpose: Purpose;
  priority?: number;
  content: OutboundContent;
  language?: string | null;
  /** Send on this medium/address (a reply goes back where the message came from). */
  channel?: string | null;
  addressId?: number | null;
  notBefore?: Date | null;
}

/** Inserts one outbox row; pass a transaction to make it part of a larger change. Returns its id. */
export async function enqueue(knex: Knex, m: EnqueueInput): Promise<number> {
  const [row] = await knex('outbox')
    .insert({
      contact_id: m.contactId,
      purpose: m.purpose,
      priority: m.priority ?? (m.purpose === 'reply' ? PRIORITY.reply : m.purpose === 'surveys' ? PRIORITY.survey : PRIORITY.broadcast),
      content: JSON.stringify(m.content),
      language: m.language ?? null,
      channel: m.channel ?? null,
      address_id: m.addressId ?? null,
      not_before: m.notBefore ?? null,
      status: 'queued',
      attempts: 0,
      created_at: new Date(),
    })
    .returning('id');
  return toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
}

/** What an outbox row says to send, to whom and how: the columns the dispatcher claims. */
export interface OutboxMessage {
  id: number;
  contactId: number;
  purpose: string;
  priority: number;
  broadcastId: number | null;
  content: OutboundContent | null;
  language: string | null;
  channel: string | null;
  addressId: number | null;
}

export interface OutboxRow extends OutboxMessage {
  status: string;
  providerId: string | null;
  errorCode: string | null;
}

/** The content column as stored: JSON text on SQLite, already parsed on PostgreSQL. */
export function parseContent(v: unknown): OutboundContent | null {
  if (v === null || v === undefined) return null;
  return (typeof v === 'string' ? JSON.parse(v) : v) as OutboundContent;
}

export function readOutboxRow(r: Record<string, unknown>): OutboxRow {
  return {
    id: toInt(r.id),
    contactId: toInt(r.contact_id),
    purpose: String(r.purpose),
    priority: toInt(r.priority),
    broadcastId: r.broadcast_id === null || r.broadcast_id === undefined ? null : toInt(r.broadcast_id),
    content: parseContent(r.content),
    language: (r.language as string | null) ?? null,
    channel: (r.channel as string | null) ?? null,
    addressId: r.address_id === null || r.address_id === undefined ? null : toInt(r.address_id),
    status: String(r.status),
    providerId: (r.provider_id as string | null) ?? null,
    errorCode: (r.error_code as string | null) ?? null,
  };
}

/** Outbox rows for one contact, oldest first (for tests, the simulator and subject-access exports). */
export async function outboxFor(knex: Knex, contactId: number): Promise<OutboxRow[]> {
  const rows = await knex('outbox').where('contact_id', contactId).orderBy('id', 'asc');
  return rows.map(readOutboxRow);
}
