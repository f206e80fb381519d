/**
 * The dispatcher's set-based SQL: claiming a batch, writing a batch of results, renewing and
 * recovering claims. Every statement is constant text with `?` placeholders; values always travel as
 * bindings (lists of ids as one JSON or array parameter; results as one JSON parameter on
 * PostgreSQL, one prepared statement per row on SQLite).
 *
 * Claiming: on PostgreSQL the rows are chosen with FOR UPDATE SKIP LOCKED inside the UPDATE, so
 * several processes claim disjoint batches without waiting for each other; on SQLite the UPDATE is
 * atomic under the database's single writer lock.
 */
import type { Database, Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { parseContent, type OutboxMessage } from './outbox.js';
import type { OutboundContent } from './types.js';

/** A claimed outbox row: what to send, and what the dispatcher needs besides (attempts so far, enqueue time in ms). */
export interface ClaimedRow extends OutboxMessage {
  attempts: number;
  createdAt: number;
}

const RETURNING = 'id, contact_id, purpose, priority, broadcast_id, content, language, channel, address_id, attempts, created_at';

// ARRAY(…) makes PostgreSQL lock the chosen rows first and then find each by its primary key (an
// IN (…) sub-query may be planned as a hash join over the whole outbox).
const CLAIM_PG = `UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ?
 WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?)
   ORDER BY priority, id LIMIT ? FOR UPDATE SKIP LOCKED))
 RETURNING ${RETURNING}`;

const CLAIM_SQLITE = `UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ?
 WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?)
   ORDER BY priority, id LIMIT ?)
 RETURNING ${RETURNING}`;

function nullableInt(v: unknown): number | null {
  return v === null || v === undefined ? null : toInt(v);
}

function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  const r = result as { rows?: Record<string, unknown>[] };
  return r?.rows ?? [];
}

/** Claims up to `limit` due rows for `claimer`, in priority order (replies, surveys, broadcasts; oldest first). */
export async function claimBatch(db: Pick<Database, 'knex' | 'kind'>, claimer: string, limit: number, now = new Date()): Promise<ClaimedRow[]> {
  const sql = db.kind === 'postgresql' ? CLAIM_PG : CLAIM_SQLITE;
  const rows = rowsOf(await db.knex.raw(sql, [claimer, now, now, limit]));
  // The rows of one broadcast or survey step mostly carry the same JSON text: parsed once (content is
  // never modified after it is read).
  let lastText: unknown;
  let lastContent: OutboundContent | null = null;
  const readContent = (v: unknown) => {
    if (typeof v !== 'string') return parseContent(v);
    if (v !== lastText) {
      lastContent = parseContent(v);
      lastText = v;
    }
    return lastContent;
  };
  // One object literal per row (a spread of a shared reader's object would make V8 build each row slowly).
  const out = rows.map(
    (r): ClaimedRow => ({
      id: toInt(r.id),
      contactId: toInt(r.contact_id),
      purpose: String(r.purpose),
      priority: toInt(r.priority),
      broadcastId: nullableInt(r.broadcast_id),
      content: readContent(r.content),
      language: (r.language as string | null) ?? null,
      channel: (r.channel as string | null) ?? null,
      addressId: nullableInt(r.address_id),
      attempts: toInt(r.attempts),
      createdAt: typeof r.created_at === 'number' ? r.created_at : toDate(r.created_at).getTime(),
    }),
  );
  // RETURNING gives no order: send in the order claimed.
  out.sort((a, b) => a.priority - b.priority || a.id - b.id);
  return out;
}

/** The end of one claimed row: its new status and what to record. */
export interface RowResult {
  id: number;
  status: 'sent' | 'failed' | 'skipped' | 'queued';
  providerId?: string | null;
  segments?: number | null;
  /** The channel that carried it (sent, failed) or must carry it next (queued); null keeps the row's. */
  channel?: string | null;
  addressId?: number | null;
  attempts: number;
  errorCode?: string | null;
  errorDetail?: string | null;
  notBefore?: Date | null;
  statusAt: Date;
}

/*
 * PostgreSQL: a batch of results travels as ONE bound parameter, a JSON array, which the database
 * unpacks (jsonb_to_recordset): one statement whatever the batch size, times as ISO strings.
 * SQLite: the connection is in this process (better-sqlite3, synchronous), so a batch is one
 * transaction of one prepared UPDATE per row (by primary key), times as epoch milliseconds (how it
 * stores dates here) — about half the work of unpacking a JSON array in SQL, which re-reads each
 * element's text for every field.
 */
const WRITE_ROW_SQLITE = `UPDATE outbox SET
  status = ?, provider_id = ?, segments = COALESCE(?, segments), channel = COALESCE(?, channel),
  address_id = COALESCE(?, address_id), attempts = ?, error_code = ?, error_detail = ?,
  not_before = ?, status_at = ?, claimed_by = NULL, claimed_at = NULL
WHERE id = ? AND claimed_by = ? AND status = 'sending'`;

const WRITE_PG = `UPDATE outbox AS o SET
  status = j.s, provider_id = j.p, segments = COALESCE(j.g, o.segments), channel = COALESCE(j.c, o.channel),
  address_id = COALESCE(j.a, o.address_id), attempts = j.n, error_code = j.e, error_detail = j.d,
  not_before = j.b, status_at = j.t, claimed_by = NULL, claimed_at = NULL
FROM jsonb_to_recordset(CAST(? AS jsonb)) AS j(i integer, s text, p text, g smallint, c text, a integer, n smallint, e text, d text, b timestamptz, t timestamptz)
WHERE o.id = j.i AND o.claimed_by = ? AND o.status = 'sending'
RETURNING o.id`;

/** The parts of a better-sqlite3 connection used here. */
interface SqliteConnection {
  prepare(sql: string): { run(...params: unknown[]): { changes: number } };
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R };
}

interface KnexPool<C> {
  acquireConnection(): Promise<C>;
  releaseConnection(connection: C): Promise<unknown>;
}

/**
 * Runs `fn` on the SQLite connection itself, taken from Knex's pool as any query takes it: nothing
 * else (no Knex transaction either) uses the connection meanwhile.
 */
async function onSqliteConnection<T>(knex: Knex, fn: (connection: SqliteConnection) => T): Promise<T> {
  const pool = knex.client as KnexPool<SqliteConnection>;
  const connection = await pool.acquireConnection();
  try {
    return fn(connection);
  } finally {
    await pool.releaseConnection(connection);
  }
}

/** Per SQLite connection: writes a batch of results in one transaction, returning how many rows changed. */
const sqliteWriters = new WeakMap<SqliteConnection, (claimer: string, results: readonly RowResult[]) => number>();

function sqliteWriter(connection: SqliteConnection): (claimer: string, results: readonly RowResult[]) => number {
  let write = sqliteWriters.get(connection);
  if (!write) {
    const update = connection.prepare(WRITE_ROW_SQLITE);
    const inTransaction = connection.transaction((claimer: string, results: readonly RowResult[]) => {
      let changed = 0;
      for (const r of results) {
        changed += update.run(
          r.status,
          r.providerId || null,
          r.segments ?? null,
          r.channel || null,
          r.addressId ?? null,
          r.attempts,
          r.errorCode || null,
          r.errorDetail || null,
          r.notBefore ? r.notBefore.getTime() : null,
          r.statusAt.getTime(),
          r.id,
          claimer,
        ).changes;
      }
      return changed;
    });
    write = (claimer, results) => inTransaction.immediate(claimer, results);
    sqliteWriters.set(connection, write);
  }
  return write;
}

/**
 * Writes a batch of results at once (one statement on PostgreSQL, one transaction on SQLite), only
 * on rows this claimer still holds in 'sending' (a row another process recovered meanwhile is left
 * to it). A re-queued row loses its claim. Returns the number of rows written.
 */
export async function writeResults(db: Pick<Database, 'knex' | 'kind'>, claimer: string, results: readonly RowResult[]): Promise<number> {
  if (results.length === 0) return 0;
  if (db.kind !== 'postgresql') return onSqliteConnection(db.knex, (connection) => sqliteWriter(connection)(claimer, results));
  const time = (d: Date | null | undefined) => (d ? d.toISOString() : null);
  // Absent keys read as NULL: only what a row has travels.
  const payload = results.map((r) => {
    const o: Record<string, unknown> = { i: r.id, s: r.status, n: r.attempts, t: time(r.statusAt) };
    if (r.providerId) o.p = r.providerId;
    if (r.segments !== null && r.segments !== undefined) o.g = r.segments;
    if (r.channel) o.c = r.channel;
    if (r.addressId !== null && r.addressId !== undefined) o.a = r.addressId;
    if (r.errorCode) o.e = r.errorCode;
    if (r.errorDetail) o.d = r.errorDetail;
    if (r.notBefore) o.b = time(r.notBefore);
    return o;
  });
  return rowsOf(await db.knex.raw(WRITE_PG, [JSON.stringify(payload), claimer])).length;
}

/*
 * The reads of every batch, as constant SQL (the query builder's compilation costs more than these
 * queries do at thousands of messages a second). A list of ids or purposes is one JSON parameter on
 * SQLite and one array parameter on PostgreSQL.
 */
const IN_IDS = { sqlite: 'IN (SELECT value FROM json_each(?))', postgresql: '= ANY(CAST(? AS integer[]))' } as const;
const IN_TEXTS = { sqlite: 'IN (SELECT value FROM json_each(?))', postgresql: '= ANY(CAST(? AS text[]))' } as const;


function idsParam(db: Pick<Database, 'kind'>, ids: readonly number[]): string {
  return db.kind === 'postgresql' ? `{${ids.map((n) => Math.trunc(Number(n))).join(',')}}` : JSON.stringify(ids);
}

function textsParam(db: Pick<Database, 'kind'>, texts: readonly string[]): string {
  // Purposes are short identifiers (letters and underscores), checked before they get here.
  return db.kind === 'postgresql' ? `{${texts.map((t) => `"${t}"`).join(',')}}` : JSON.stringify(texts);
}

// On PostgreSQL the joins are LATERAL (with OFFSET 0, which keeps the planner from flattening them)
// so that each contact's consents and addresses are found through their indexes instead of hashing
// whole tables; SQLite's planner does that by itself.
const BATCH_SQL = {
  sqlite: `SELECT c.id, c.status, c.stopped_at, c.erased_at, c.language, s.purpose,
  a.id AS address_id, a.channel, a.kind, a.address, a.opted_out, a.last_inbound_at
FROM contacts c
LEFT JOIN consent_state s ON s.contact_id = c.id AND s.granted = ? AND s.purpose ${IN_TEXTS.sqlite}
LEFT JOIN contact_addresses a ON a.contact_id = c.id
WHERE c.id ${IN_IDS.sqlite}`,
  postgresql: `SELECT c.id, c.status, c.stopped_at, c.erased_at, c.language, s.purpose,
  a.id AS address_id, a.channel, a.kind, a.address, a.opted_out, a.last_inbound_at
FROM contacts c
LEFT JOIN LATERAL (SELECT purpose FROM consent_state WHERE contact_id = c.id AND granted = ? AND purpose ${IN_TEXTS.postgresql} OFFSET 0) s ON true
LEFT JOIN LATERAL (SELECT id, channel, kind, address, opted_out, last_inbound_at FROM contact_addresses WHERE contact_id = c.id OFFSET 0) a ON true
WHERE c.id ${IN_IDS.postgresql}`,
};

/**
 * The contacts of a batch with, per address, one row per purpose (among `purposes`) they currently
 * consent to: status, stop time, erasure, language, purpose, and the address.
 */
export async function batchRows(db: Pick<Database, 'knex' | 'kind'>, contactIds: readonly number[], purposes: readonly string[]): Promise<Record<string, unknown>[]> {
  for (const p of purposes) if (!/^[a-z_]{1,32}$/.test(p)) throw new Error(`not a purpose: ${JSON.stringify(p).slice(0, 40)}`);
  return rowsOf(await db.knex.raw(BATCH_SQL[db.kind], [true, textsParam(db, purposes), idsParam(db, contactIds)]));
}

const LAST_CHANNEL_SQL = {
  sqlite: `SELECT address_id, channel, MAX(id) AS last FROM inbound_messages WHERE contact_id ${IN_IDS.sqlite} AND address_id IS NOT NULL GROUP BY address_id, channel`,
  postgresql: `SELECT address_id, channel, MAX(id) AS last FROM inbound_messages WHERE contact_id ${IN_IDS.postgresql} AND address_id IS NOT NULL GROUP BY address_id, channel`,
};

/** Per address of these contacts and per channel, the newest inbound message's id. */
export async function lastInboundRows(db: Pick<Database, 'knex' | 'kind'>, contactIds: readonly number[]): Promise<Record<string, unknown>[]> {
  return rowsOf(await db.knex.raw(LAST_CHANNEL_SQL[db.kind], [idsParam(db, contactIds)]));
}

const CHANGED_SQL = {
  sqlite: `SELECT c.id, c.status, c.stopped_at, c.erased_at, s.purpose
FROM contacts c LEFT JOIN consent_state s ON s.contact_id = c.id AND s.granted = ?
WHERE c.id ${IN_IDS.sqlite} AND (c.status <> 'active' OR c.erased_at IS NOT NULL OR s.contact_id IS NOT NULL)`,
  postgresql: `SELECT c.id, c.status, c.stopped_at, c.erased_at, s.purpose
FROM contacts c LEFT JOIN LATERAL (SELECT contact_id, purpose FROM consent_state WHERE contact_id = c.id AND granted = ? OFFSET 0) s ON true
WHERE c.id ${IN_IDS.postgresql} AND (c.status <> 'active' OR c.erased_at IS NOT NULL OR s.contact_id IS NOT NULL)`,
};

/**
 * Of these contacts, those that may have changed since their batch was prepared with them active
 * and consenting: not active any more, erased, or with a consent withdrawn (one row per withdrawn
 * purpose). Usually none.
 */
export async function changedContactRows(db: Pick<Database, 'knex' | 'kind'>, contactIds: readonly number[]): Promise<Record<string, unknown>[]> {
  return rowsOf(await db.knex.raw(CHANGED_SQL[db.kind], [false, idsParam(db, contactIds)]));
}

/** Gives claimed rows back untouched (graceful stop): queued again, no attempt counted. */
export async function releaseClaims(knex: Knex, claimer: string, ids: readonly number[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    n += await knex('outbox')
      .whereIn('id', ids.slice(i, i + 500))
      .where({ claimed_by: claimer, status: 'sending' })
      .update({ status: 'queued', claimed_by: null, claimed_at: null });
  }
  return n;
}

/** Renews this claimer's claims so that no other process takes them for a dead process's. */
export async function renewClaims(knex: Knex, claimer: string, now = new Date()): Promise<number> {
  return knex('outbox').where({ status: 'sending', claimed_by: claimer }).update({ claimed_at: now });
}

/**
 * Re-queues rows whose claim was not renewed since `olderThan`: their process died. Any of them may
 * already have reached the person (the provider answered, the process died before writing it down),
 * so each is marked `possible_duplicate`. Returns how many.
 */
export async function recoverStaleClaims(knex: Knex, olderThan: Date): Promise<number> {
  return knex('outbox')
    .where('status', 'sending')
    .where('claimed_at', '<', olderThan)
    .update({ status: 'queued', claimed_by: null, claimed_at: null, possible_duplicate: true });
}
