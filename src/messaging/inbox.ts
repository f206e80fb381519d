/**
 * The staff inbox, the router's side: its last step, and the conversations that unhandled messages
 * open. The message waits for a human; the person gets an acknowledgement (at most one every 12
 * hours, so a conversation is not answered by a robot after every line).
 *
 * Every message routed to `inbox` (by this step or by a psychosocial handoff) and every message set
 * aside as `error` by the inbound worker opens its contact's conversation in `inbox_conversations`,
 * or reopens it when staff had closed it (`noteUnhandled`, just before the route is recorded). Staff
 * work the conversations through src/inbox/.
 */
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { enqueue } from './outbox.js';
import { wording } from './texts.js';
import type { RouterStep } from './types.js';

const ACK_EVERY_MS = 12 * 3_600_000;

export const inboxStep: RouterStep = async (ctx) => {
  const { knex } = ctx.services.db;
  if (ctx.contact.status !== 'active') return 'inbox';
  const recent = await knex('inbound_messages')
    .where('contact_id', ctx.contact.id)
    .where('route', 'inbox')
    .where('received_at', '>=', new Date(ctx.message.receivedAt.getTime() - ACK_EVERY_MS))
    .whereNot('id', ctx.message.id)
    .first('id');
  if (!recent) {
    const w = wording('inbox-ack', [ctx.contact.language, ctx.services.config.DEFAULT_LANGUAGE]);
    await enqueue(knex, { contactId: ctx.contact.id, purpose: 'reply', content: { type: 'text', text: w.text }, language: w.language, channel: ctx.address.medium, addressId: ctx.address.id });
  }
  return 'inbox';
};

/** Routes whose messages wait for staff. */
export const UNHANDLED_ROUTES = ['inbox', 'error'] as const;

export interface UnhandledMessage {
  messageId: number;
  contactId: number;
  addressId: number | null;
  receivedAt: Date;
  /** Set aside by the inbound worker after its routing failed. */
  error: boolean;
}

/**
 * The upsert behind noteUnhandled, written once (the same text on SQLite and PostgreSQL, so SQLite's
 * statement cache keeps it prepared): the newest message decides where replies go; a closed
 * conversation opens again, unclaimed as closing left it, with its error flag from this message.
 */
const UPSERT = `INSERT INTO inbox_conversations (contact_id, status, last_message_id, last_message_at, last_address_id, opened_at, has_error, restricted, rumour, updated_at)
VALUES (?, 'open', ?, ?, ?, ?, ?,
  EXISTS (SELECT 1 FROM pss_triage WHERE contact_id = ? AND handoff_open = ?) OR (? AND EXISTS (SELECT 1 FROM complaint_intakes WHERE contact_id = ?)),
  false, ?)
ON CONFLICT (contact_id) DO UPDATE SET
  status = 'open',
  last_message_id = CASE WHEN excluded.last_message_id > inbox_conversations.last_message_id THEN excluded.last_message_id ELSE inbox_conversations.last_message_id END,
  last_message_at = CASE WHEN excluded.last_message_id > inbox_conversations.last_message_id THEN excluded.last_message_at ELSE inbox_conversations.last_message_at END,
  last_address_id = CASE WHEN excluded.last_message_id > inbox_conversations.last_message_id OR inbox_conversations.last_address_id IS NULL THEN excluded.last_address_id ELSE inbox_conversations.last_address_id END,
  opened_at = CASE WHEN inbox_conversations.status = 'closed' THEN excluded.opened_at ELSE inbox_conversations.opened_at END,
  has_error = CASE WHEN inbox_conversations.status = 'closed' OR excluded.has_error THEN excluded.has_error ELSE inbox_conversations.has_error END,
  restricted = CASE WHEN excluded.restricted THEN excluded.restricted ELSE inbox_conversations.restricted END,
  closed_at = CASE WHEN inbox_conversations.status = 'closed' THEN NULL ELSE inbox_conversations.closed_at END,
  closed_by_label = CASE WHEN inbox_conversations.status = 'closed' THEN NULL ELSE inbox_conversations.closed_by_label END,
  updated_at = excluded.updated_at`;

/**
 * Opens the contact's conversation for an unhandled message, or reopens a closed one. A message that
 * arrives while a psychosocial red handoff is open, or (set aside as `error`) while a complaint
 * intake is in progress, restricts the conversation to holders of complaints.sensitive, for good.
 * One statement, idempotent: the router runs it before it records the route, so a crash in between
 * routes the message again (after the stale-claim delay) and opens nothing twice.
 */
export async function noteUnhandled(knex: Knex, m: UnhandledMessage): Promise<void> {
  const now = new Date();
  await knex.raw(UPSERT, [m.contactId, m.messageId, m.receivedAt, m.addressId, now, m.error, m.contactId, true, m.error, m.contactId, now]);
}

/** noteUnhandled for a stored message known by its id (the inbound worker's `error` path). */
export async function noteUnhandledById(trx: Knex, messageId: number, error: boolean): Promise<void> {
  const r = await trx('inbound_messages').where('id', messageId).first('contact_id', 'address_id', 'received_at');
  if (!r || r.contact_id === null || r.contact_id === undefined) return;
  await noteUnhandled(trx, {
    messageId,
    contactId: toInt(r.contact_id),
    addressId: r.address_id === null || r.address_id === undefined ? null : toInt(r.address_id),
    receivedAt: toDate(r.received_at),
    error,
  });
}
