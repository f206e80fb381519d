/**
 * The retention schedule (a daily job; src/jobs/retention.ts calls `runRetention`):
 *  1. conversation text — `inbound_messages.text`, and the content of reply messages in the outbox —
 *     is erased RETENTION_MESSAGE_DAYS days after it was received/created (default 1), unless the
 *     message is marked `keep` (part of a survey answer or complaint the person agreed to keep);
 *  2. contacts with no active consent, no open question and no open case (see hooks.ts
 *     OPEN_CASE_QUERIES), whose last activity is older than RETENTION_UNCONSENTED_DAYS (default 7),
 *     lose number, name and fields (the same erasure as a staff request; blocked contacts are kept,
 *     so the block holds);
 *  3. on SQLite (secure_delete is on for every connection) the WAL is checkpointed and the file is
 *     vacuumed, so erased numbers and text are gone from the database file itself. PostgreSQL's
 *     autovacuum reclaims the space; its files are not rewritten here.
 */
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { audit, SYSTEM } from '../staff/audit.js';
import { OPEN_CASE_QUERIES } from './hooks.js';
import { eraseContactData } from './rights.js';

const DAY = 86_400_000;
const BATCH = 5000;
const FINAL_OUTBOX = ['sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped'];

export interface RetentionResult {
  [key: string]: number | boolean;
  messagesErased: number;
  repliesErased: number;
  contactsErased: number;
  vacuumed: boolean;
}

/** Erases message text older than the period, in batches. Returns how many messages. */
export async function eraseOldMessageText(knex: Knex, cutoff: Date, now = new Date()): Promise<{ messages: number; replies: number }> {
  let messages = 0;
  for (;;) {
    const ids = await knex('inbound_messages').whereNotNull('text').where('keep', false).where('received_at', '<', cutoff).orderBy('id').limit(BATCH).pluck('id');
    if (!ids.length) break;
    messages += await knex('inbound_messages').whereIn('id', ids).update({ text: null, text_erased_at: now });
  }
  let replies = 0;
  for (;;) {
    const ids = await knex('outbox').where('purpose', 'reply').whereNotNull('content').whereIn('status', FINAL_OUTBOX).where('created_at', '<', cutoff).orderBy('id').limit(BATCH).pluck('id');
    if (!ids.length) break;
    replies += await knex('outbox').whereIn('id', ids).update({ content: null });
  }
  return { messages, replies };
}

/** Contacts due for erasure: no consent granted now, nothing recent, no open question or case. */
export function unconsentedContacts(knex: Knex, cutoff: Date, now: Date): Knex.QueryBuilder {
  const q = knex('contacts as c')
    .whereNull('c.erased_at')
    .whereNot('c.status', 'blocked')
    .where((w) => w.where('c.last_seen_at', '<', cutoff).orWhere((x) => x.whereNull('c.last_seen_at').where('c.created_at', '<', cutoff)))
    .whereNotExists(knex('consent_state as s').whereRaw('s.contact_id = c.id').where('s.granted', true).select(knex.raw('1')))
    .whereNotExists(knex('consents as k').whereRaw('k.contact_id = c.id').where('k.at', '>=', cutoff).select(knex.raw('1')))
    .whereNotExists(knex('pending_confirmations as p').whereRaw('p.contact_id = c.id').whereNull('p.answered_at').where('p.expires_at', '>', now).select(knex.raw('1')))
    .select('c.id');
  // NOT IN over a set holding a NULL matches nothing, so nulls are filtered whatever the hook returns.
  for (const oc of OPEN_CASE_QUERIES) q.whereNotIn('c.id', knex.from(oc.contactIds(knex).as('oc')).whereNotNull('oc.contact_id').select('oc.contact_id'));
  return q;
}

/** SQLite: write the WAL back, rewrite the file without free pages, and empty the WAL. */
export async function compactSqlite(db: Database): Promise<boolean> {
  if (db.kind !== 'sqlite') return false;
  await db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
  await db.knex.raw('VACUUM');
  await db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
  return true;
}

export async function runRetention(
  db: Database,
  config: Pick<Config, 'RETENTION_MESSAGE_DAYS' | 'RETENTION_UNCONSENTED_DAYS'>,
  opts: { now?: Date; vacuum?: boolean } = {},
): Promise<RetentionResult> {
  const now = opts.now ?? new Date();
  const { knex } = db;
  const result: RetentionResult = { messagesErased: 0, repliesErased: 0, contactsErased: 0, vacuumed: false };
  if (config.RETENTION_MESSAGE_DAYS > 0) {
    const r = await eraseOldMessageText(knex, new Date(now.getTime() - config.RETENTION_MESSAGE_DAYS * DAY), now);
    result.messagesErased = r.messages;
    result.repliesErased = r.replies;
  }
  if (config.RETENTION_UNCONSENTED_DAYS > 0) {
    const cutoff = new Date(now.getTime() - config.RETENTION_UNCONSENTED_DAYS * DAY);
    for (;;) {
      const ids = (await unconsentedContacts(knex, cutoff, now).orderBy('c.id').limit(500)).map((r: { id: unknown }) => toInt(r.id));
      if (!ids.length) break;
      await knex.transaction(async (trx) => {
        for (const id of ids) await eraseContactData(trx, id, { at: now, evidenceRef: 'retention: no active consent' });
      });
      result.contactsErased += ids.length;
    }
  }
  // Compact after anything erased now, or erased by staff since the last daily run (their bytes may still be in the WAL).
  const staffErasures = await knex('contacts').where('erased_at', '>=', new Date(now.getTime() - 2 * DAY)).first('id');
  const changed = result.messagesErased + result.repliesErased + result.contactsErased > 0 || Boolean(staffErasures);
  if (changed && opts.vacuum !== false) result.vacuumed = await compactSqlite(db);
  await audit(db, SYSTEM, { action: 'retention.run', detail: { ...result } });
  return result;
}
