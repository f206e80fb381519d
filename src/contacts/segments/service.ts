/**
 * Saved segments (table `segments`), live counts, and `audienceQuery`: the one way other domains
 * (broadcasts, surveys, cash) turn a segment and/or lists into a set of contacts, ready for an
 * `INSERT … SELECT` fan-out.
 */
import { z } from 'zod';
import type { Database, Knex } from '../../db/orm.js';
import { toDate, toInt } from '../../db/values.js';
import { HttpError, notFound } from '../../http/errors.js';
import { audit, type Actor } from '../../staff/audit.js';
import { loadCatalog, type Catalog } from './catalog.js';
import { compileSegment, dialectOf, type CompiledSegment } from './compile.js';
import { SegmentError } from './errors.js';
import { MAX_QUERY_LENGTH } from './parser.js';
import { CONSENT_PURPOSES, type MEDIA } from './catalog.js';

export interface Segment {
  id: number;
  key: string;
  name: string;
  query: string;
  createdById: number | null;
  createdAt: Date;
  updatedAt: Date;
}

export const segmentKey = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9_-]*$/, { message: 'use lower-case letters, digits, - and _ (such as lima-migrants)' });

export const segmentInput = z.object({
  key: segmentKey,
  name: z.string().trim().min(1).max(200),
  query: z.string().trim().min(1, { message: 'write a query, such as language = "es"' }).max(MAX_QUERY_LENGTH),
});
export const segmentPatch = segmentInput.partial();

/** A SegmentError as the API's 400 envelope: the message with line and column, and the position. */
export function segmentHttpError(e: SegmentError): HttpError {
  return new HttpError(400, 'segment_invalid', `The segment query is not valid: ${e.display}`, { query: e.display, position: e.position, suggestion: e.suggestion ?? null, reason: e.code });
}

/** Compiles query text against the current fields and lists; throws SegmentError. */
export async function compileQuery(knex: Knex, query: string, opts: { now?: Date; catalog?: Catalog } = {}): Promise<CompiledSegment> {
  const catalog = opts.catalog ?? (await loadCatalog(knex));
  return compileSegment(query, catalog, { dialect: dialectOf(knex), now: opts.now });
}

function rowToSegment(r: Record<string, unknown>): Segment {
  return {
    id: toInt(r.id),
    key: String(r.key),
    name: String(r.name),
    query: String(r.query),
    createdById: r.created_by_id === null || r.created_by_id === undefined ? null : toInt(r.created_by_id),
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
  };
}

export async function listSegments(knex: Knex, opts: { limit?: number; offset?: number; search?: string } = {}): Promise<{ data: Segment[]; total: number }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
  const base = knex('segments');
  if (opts.search) {
    const s = opts.search.toLowerCase();
    base.where((b) => b.whereRaw('instr(lower(??), ?) > 0', ['key', s]).orWhereRaw('instr(lower(??), ?) > 0', ['name', s]));
  }
  const [{ n }] = await base.clone().count({ n: '*' });
  const rows = await base.clone().select('*').orderBy('name').orderBy('id').limit(limit).offset(opts.offset ?? 0);
  return { data: rows.map(rowToSegment), total: toInt(n) };
}

export async function findSegment(knex: Knex, ref: number | string): Promise<Segment | null> {
  const row = await knex('segments').where(typeof ref === 'number' ? 'id' : 'key', ref).first();
  return row ? rowToSegment(row) : null;
}

export async function getSegment(knex: Knex, ref: number | string): Promise<Segment> {
  const s = await findSegment(knex, ref);
  if (!s) throw notFound('There is no such segment');
  return s;
}

async function validQuery(knex: Knex, query: string): Promise<void> {
  try {
    await compileQuery(knex, query);
  } catch (e) {
    if (e instanceof SegmentError) throw segmentHttpError(e);
    throw e;
  }
}

async function keyTaken(knex: Knex, key: string, exceptId?: number): Promise<boolean> {
  const q = knex('segments').where('key', key).first('id');
  if (exceptId) q.whereNot('id', exceptId);
  return Boolean(await q);
}

export async function createSegment(db: Database, actor: Actor, input: z.input<typeof segmentInput>): Promise<Segment> {
  const data = segmentInput.parse(input);
  await validQuery(db.knex, data.query);
  if (await keyTaken(db.knex, data.key)) throw new HttpError(409, 'conflict', 'A segment with this key exists', { key: 'is already used by another segment' });
  const now = new Date();
  const [row] = await db.knex('segments').insert({ key: data.key, name: data.name, query: data.query, created_by_id: actor.userId ?? (actor.type === 'staff' ? actor.id : null), created_at: now, updated_at: now }).returning('id');
  const id = toInt(typeof row === 'object' ? row.id : row);
  await audit(db, actor, { action: 'segment.create', entityType: 'segment', entityId: id, detail: { key: data.key } });
  return getSegment(db.knex, id);
}

export async function updateSegment(db: Database, actor: Actor, id: number, input: z.input<typeof segmentPatch>): Promise<Segment> {
  const data = segmentPatch.parse(input);
  const current = await getSegment(db.knex, id);
  if (data.query !== undefined) await validQuery(db.knex, data.query);
  if (data.key !== undefined && data.key !== current.key && (await keyTaken(db.knex, data.key, id))) {
    throw new HttpError(409, 'conflict', 'A segment with this key exists', { key: 'is already used by another segment' });
  }
  const changes: Record<string, unknown> = { updated_at: new Date() };
  if (data.key !== undefined) changes.key = data.key;
  if (data.name !== undefined) changes.name = data.name;
  if (data.query !== undefined) changes.query = data.query;
  await db.knex('segments').where('id', id).update(changes);
  await audit(db, actor, { action: 'segment.update', entityType: 'segment', entityId: id, detail: { key: data.key ?? current.key, changed: Object.keys(data) } });
  return getSegment(db.knex, id);
}

export async function deleteSegment(db: Database, actor: Actor, id: number): Promise<void> {
  const current = await getSegment(db.knex, id);
  await db.knex('segments').where('id', id).delete();
  await audit(db, actor, { action: 'segment.delete', entityType: 'segment', entityId: id, detail: { key: current.key } });
}

// ------------------------------------------------------------------------------- audiences

export interface AudienceSpec {
  /** Segment query text. */
  query?: string;
  /** A saved segment, by id or key. */
  segment?: number | string;
  /** Contacts with an active subscription to at least one of these lists (ids or keys). */
  lists?: (number | string)[];
  /** Only contacts whose current consent for this purpose is granted. */
  purpose?: (typeof CONSENT_PURPOSES)[number];
  /** Only contacts with an address on one of these channels that has not opted out. */
  media?: (typeof MEDIA)[number][];
  /** Only contacts with status active (default true). Erased contacts are always left out. */
  activeOnly?: boolean;
  /** "now" for durations in the query (default: the current time). */
  now?: Date;
}

/**
 * A query over `contacts as c` restricted to the audience, with no columns chosen yet: add
 * `.select('c.id', …)` for an `INSERT … SELECT` fan-out, or `.count()`. Pass the transaction
 * as `knex` when inside one. Throws SegmentError for a query that does not compile and an
 * HttpError (404) for an unknown segment or list. (The builder comes wrapped in an object
 * because a Knex builder is thenable: awaiting it bare would run it.)
 *
 *   const { query } = await audienceQuery(trx, { segment: 'lima-es', purpose: 'updates' });
 *   await trx('outbox').insert(query.select('c.id as contact_id', trx.raw('? as broadcast_id', [id]), …));
 */
export async function audienceQuery(knex: Knex, spec: AudienceSpec): Promise<{ query: Knex.QueryBuilder }> {
  const qb = knex({ c: 'contacts' }).whereNull('c.erased_at');
  if (spec.activeOnly !== false) qb.where('c.status', 'active');
  const texts: string[] = [];
  if (spec.segment !== undefined) texts.push((await getSegment(knex, spec.segment)).query);
  if (spec.query !== undefined && spec.query.trim() !== '') texts.push(spec.query);
  if (texts.length) {
    const catalog = await loadCatalog(knex);
    for (const t of texts) compileSegment(t, catalog, { dialect: dialectOf(knex), now: spec.now }).apply(qb);
  }
  if (spec.lists && spec.lists.length) {
    const ids = spec.lists.filter((l): l is number => typeof l === 'number');
    const keys = spec.lists.filter((l): l is string => typeof l === 'string');
    if (keys.length) {
      const found = await knex('lists').whereIn('key', keys).select('id', 'key');
      const missing = keys.filter((k) => !found.some((f: Record<string, unknown>) => f.key === k));
      if (missing.length) throw notFound(`There is no list with the key ${missing.join(', ')}`);
      ids.push(...found.map((f: Record<string, unknown>) => toInt(f.id)));
    }
    qb.whereIn('c.id', function (this: Knex.QueryBuilder) {
      this.select('contact_id').from('subscriptions').where('status', 'active').whereIn('list_id', ids);
    });
  }
  if (spec.purpose) {
    const purpose = spec.purpose;
    qb.whereIn('c.id', function (this: Knex.QueryBuilder) {
      this.select('contact_id').from('consent_state').where('granted', true).where('purpose', purpose);
    });
  }
  if (spec.media && spec.media.length) {
    const media = spec.media;
    qb.whereIn('c.id', function (this: Knex.QueryBuilder) {
      this.select('contact_id').from('contact_addresses').where('opted_out', false).whereIn('channel', media);
    });
  }
  return { query: qb };
}

/** How many contacts an audience holds right now. */
export async function countAudience(knex: Knex, spec: AudienceSpec): Promise<number> {
  const { query } = await audienceQuery(knex, spec);
  const [{ n }] = await query.count({ n: '*' });
  return toInt(n);
}

export interface SegmentCount {
  /** Contacts that match (erased contacts never do). */
  total: number;
  /** Of those, the ones with status active: who a broadcast could reach, consent permitting. */
  active: number;
}

/** The live count for query text as staff type it, in one pass over the matching contacts. */
export async function countQuery(knex: Knex, query: string, opts: { now?: Date } = {}): Promise<SegmentCount> {
  const { query: q } = await audienceQuery(knex, { query, activeOnly: false, now: opts.now });
  const [row] = await q.select(knex.raw('count(*) as n'), knex.raw('coalesce(sum(case when ?? = ? then 1 else 0 end), 0) as active', ['c.status', 'active']));
  return { total: toInt(row.n), active: toInt(row.active) };
}
