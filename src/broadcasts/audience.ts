/**
 * Who a broadcast goes to, as one SQL query: the one place both the preview and the fan-out come
 * from, so that what the preview counts is exactly what the fan-out inserts.
 *
 *   audience     the broadcast's lists (active subscriptions) and/or saved segment, via the segments
 *                domain's `audienceQuery`: erased contacts never, stopped and blocked ones never;
 *   exclusions   no current `updates` consent; no usable address for the channel policy (WhatsApp only:
 *                a WhatsApp address; SMS only: an SMS number; WhatsApp then SMS: either); messaged by
 *                another broadcast in the last N hours (when set);
 *   language     per contact, in SQL: the contact's language when the message has it (es-PE takes es),
 *                else the default language of the first of the broadcast's lists they are on that the
 *                message has, else the programme's (DEFAULT_LANGUAGE, or the message's first language);
 *   not_before   quiet hours in the contact's own time zone (the programme's when they have none): the
 *                time zones in use are listed with a few index seeks, and each one in its quiet hours at
 *                fan-out time becomes one WHEN of a CASE giving the end of its quiet hours;
 *   channel      the outbox row's channel: 'whatsapp' (WhatsApp only), 'sms' (SMS only) or NULL
 *                (WhatsApp, else SMS: the dispatcher chooses at send time).
 * Every value travels as a binding; the SQL text depends only on how many languages, lists and time
 * zones there are.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { audienceQuery, dialectOf, type AudienceSpec } from '../contacts/segments/index.js';
import { isTimeZone, quietUntil, type QuietHours } from './quiet.js';

export const CHANNEL_POLICIES = ['whatsapp_then_sms', 'sms_only', 'whatsapp_only'] as const;
export type ChannelPolicy = (typeof CHANNEL_POLICIES)[number];

/** Statuses of another broadcast's row that count as "messaged" for the recent-messages exclusion. */
const MESSAGED = ['queued', 'sending', 'sent', 'delivered', 'read'];

export interface RecipientSpec {
  broadcastId: number;
  lists: number[];
  segmentId: number | null;
  policy: ChannelPolicy;
  excludeRecentHours: number | null;
  quiet: QuietHours | null;
  /** The languages the message version has. */
  languages: string[];
  /** The programme's default language (DEFAULT_LANGUAGE). */
  defaultLanguage: string;
  /** The programme's time zone, for contacts without one (DEFAULT_TIMEZONE). */
  defaultTimezone: string;
  now: Date;
}

/** A scalar SQL expression over `c` with its bindings. */
export interface Expr {
  sql: string;
  bindings: unknown[];
}

/** The expression as a select column named `alias`. */
export function column(knex: Knex, e: Expr, alias: string): Knex.Raw {
  return knex.raw(`${e.sql} AS ??`, [...e.bindings, alias]);
}

export interface Recipients {
  /** `contacts as c`, restricted to the recipients, no columns chosen. */
  query: Knex.QueryBuilder;
  /** The resolved language of each recipient. */
  language: Expr;
  /** Where the language came from: 'contact', 'list' or 'programme'. */
  languageSource: Expr;
  /** When the message may go (end of quiet hours), or NULL. */
  notBefore: Expr;
  /** The outbox row's channel for this policy, or null. */
  channel: string | null;
  /** The programme-level fallback language actually used. */
  programmeLanguage: string;
  /** Time zones in use and when each one's quiet hours end (absent: not quiet at `now`). */
  quietZones: Map<string, Date>;
}

export function mediaFor(policy: ChannelPolicy): ('whatsapp' | 'sms')[] {
  return policy === 'whatsapp_only' ? ['whatsapp'] : policy === 'sms_only' ? ['sms'] : ['whatsapp', 'sms'];
}

export function channelFor(policy: ChannelPolicy): string | null {
  return policy === 'whatsapp_only' ? 'whatsapp' : policy === 'sms_only' ? 'sms' : null;
}

/** The language a contact whose own language the message lacks falls back to, at programme level. */
export function programmeLanguage(languages: string[], defaultLanguage: string): string {
  if (languages.includes(defaultLanguage)) return defaultLanguage;
  const base = defaultLanguage.split('-')[0];
  if (languages.includes(base)) return base;
  return languages[0];
}

/** The variant a contact language selects, in JavaScript (the renderer's twin of the SQL). */
export function variantLanguage(language: string | null | undefined, languages: string[]): string | null {
  if (!language) return null;
  if (languages.includes(language)) return language;
  const base = language.split('-')[0];
  return languages.includes(base) ? base : null;
}

/**
 * Time zones in use by contacts, listed by skipping through the contacts(timezone) index (a recursive
 * query: one index seek per distinct zone, not a scan of the table).
 */
export async function timeZonesInUse(knex: Knex): Promise<string[]> {
  const rows = await knex.raw(
    `WITH RECURSIVE tz(z) AS (
       SELECT min(timezone) FROM contacts
       UNION ALL
       SELECT (SELECT min(timezone) FROM contacts WHERE timezone > tz.z) FROM tz WHERE tz.z IS NOT NULL
     ) SELECT z FROM tz WHERE z IS NOT NULL`,
  );
  const list = Array.isArray(rows) ? rows : (rows as { rows: Record<string, unknown>[] }).rows;
  return list.map((r: Record<string, unknown>) => String(r.z));
}

/** Default languages of the given lists. */
async function listLanguages(knex: Knex, lists: number[]): Promise<Map<number, string>> {
  if (lists.length === 0) return new Map();
  const rows = await knex('lists').whereIn('id', lists).select('id', 'default_language');
  return new Map(rows.map((r: Record<string, unknown>) => [toInt(r.id), String(r.default_language)]));
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');

export async function recipientsQuery(knex: Knex, spec: RecipientSpec): Promise<Recipients> {
  const pg = dialectOf(knex) === 'postgresql';
  const audience: AudienceSpec = { purpose: 'updates', media: mediaFor(spec.policy), activeOnly: true, now: spec.now };
  if (spec.lists.length) audience.lists = spec.lists;
  if (spec.segmentId !== null) audience.segment = spec.segmentId;
  if (!audience.lists && audience.segment === undefined) throw new Error('a broadcast needs lists or a segment');
  const { query } = await audienceQuery(knex, audience);

  if (spec.excludeRecentHours && spec.excludeRecentHours > 0) {
    const since = new Date(spec.now.getTime() - spec.excludeRecentHours * 3_600_000);
    query.whereNotExists(function (this: Knex.QueryBuilder) {
      this.select(knex.raw('1'))
        .from('outbox as r')
        .whereRaw('?? = ??', ['r.contact_id', 'c.id'])
        .whereNotNull('r.broadcast_id')
        .whereNot('r.broadcast_id', spec.broadcastId)
        .where('r.created_at', '>=', since)
        .whereIn('r.status', MESSAGED);
    });
  }

  // ---- language (PostgreSQL must be told the type of a bound value that stands alone)
  const text = pg ? 'CAST(? AS varchar)' : '?';
  const langs = spec.languages;
  const fallback = programmeLanguage(langs, spec.defaultLanguage);
  const bases = langs.filter((l) => !l.includes('-'));
  const listLang = await listLanguages(knex, spec.lists);
  const listDefaults = spec.lists.map((id) => listLang.get(id)).map((l) => (l ? (langs.includes(l) ? l : langs.includes(l.split('-')[0]) ? l.split('-')[0] : null) : null));
  // The list step as SQL: nothing (no lists), one constant (every list falls back alike), or a lookup.
  let listSql: { sql: string; bindings: unknown[] } | null = null;
  if (spec.lists.length && listDefaults.every((l) => l !== null && l === listDefaults[0])) {
    listSql = { sql: text, bindings: [listDefaults[0]] };
  } else if (spec.lists.length && listDefaults.some((l) => l !== null)) {
    const usable = spec.lists.filter((_, i) => listDefaults[i] !== null);
    // The first list (by id) the contact is on whose default language the message has (or its base).
    const whens = usable.map(() => `WHEN ? THEN ${text}`).join(' ');
    listSql = {
      sql: `(SELECT CASE s.list_id ${whens} END FROM subscriptions s WHERE s.contact_id = c.id AND s.status = 'active' AND s.list_id IN (${marks(usable.length)}) ORDER BY s.list_id LIMIT 1)`,
      bindings: [...usable.flatMap((id) => [id, listDefaults[spec.lists.indexOf(id)]]), ...usable],
    };
  }
  const contactMatch = {
    sql: `c.language IN (${marks(langs.length)})${bases.map(() => ' OR c.language LIKE ?').join('')}`,
    bindings: [...langs, ...bases.map((b) => `${b}-%`)],
  };
  const contactLang = {
    sql: `CASE WHEN c.language IN (${marks(langs.length)}) THEN c.language${bases.map(() => ` WHEN c.language LIKE ? THEN ${text}`).join('')}`,
    bindings: [...langs, ...bases.flatMap((b) => [`${b}-%`, b])],
  };
  const language: Expr = listSql
    ? { sql: `${contactLang.sql} ELSE COALESCE(${listSql.sql}, ${text}) END`, bindings: [...contactLang.bindings, ...listSql.bindings, fallback] }
    : { sql: `${contactLang.sql} ELSE ${text} END`, bindings: [...contactLang.bindings, fallback] };
  const languageSource: Expr = listSql
    ? { sql: `CASE WHEN ${contactMatch.sql} THEN 'contact' WHEN ${listSql.sql} IS NOT NULL THEN 'list' ELSE 'programme' END`, bindings: [...contactMatch.bindings, ...listSql.bindings] }
    : { sql: `CASE WHEN ${contactMatch.sql} THEN 'contact' ELSE 'programme' END`, bindings: contactMatch.bindings };

  // ---- quiet hours
  const quietZones = new Map<string, Date>();
  let notBefore: Expr = { sql: pg ? 'CAST(NULL AS timestamptz)' : 'NULL', bindings: [] };
  if (spec.quiet) {
    const zones = (await timeZonesInUse(knex)).filter(isTimeZone);
    const defaultEnd = quietUntil(spec.now, spec.defaultTimezone, spec.quiet);
    const ends = zones.map((z) => quietUntil(spec.now, z, spec.quiet));
    zones.forEach((z, i) => {
      if (ends[i]) quietZones.set(z, ends[i]!);
    });
    if (defaultEnd) quietZones.set(spec.defaultTimezone, defaultEnd);
    const cast = pg ? 'CAST(? AS timestamptz)' : '?';
    if (zones.length === 0) {
      // Nobody has a time zone of their own: everyone is in the programme's.
      if (defaultEnd) notBefore = { sql: cast, bindings: [defaultEnd] };
    } else if (quietZones.size > 0) {
      // Zones listed explicitly; NULL and time zones the programme cannot read take the programme's.
      const whens = zones.map((_, i) => (ends[i] ? `WHEN ? THEN ${cast}` : 'WHEN ? THEN NULL')).join(' ');
      const bindings: unknown[] = [];
      zones.forEach((z, i) => {
        bindings.push(z);
        if (ends[i]) bindings.push(ends[i]);
      });
      notBefore = { sql: `CASE c.timezone ${whens} ELSE ${defaultEnd ? cast : 'NULL'} END`, bindings: defaultEnd ? [...bindings, defaultEnd] : bindings };
    }
  }

  return { query, language, languageSource, notBefore, channel: channelFor(spec.policy), programmeLanguage: fallback, quietZones };
}
