/**
 * Opt-in distribution lists and their subscriptions. A list has a key, a name, a purpose (the
 * consent purpose its messages need), join keywords per language, single or double opt-in, a
 * welcome message and "how often" per language, and a default language. One list is the default:
 * a plain `JOIN` joins it. `ensureDefaults` creates it on a fresh install.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { CONSENT_PURPOSES, type ConsentPurpose } from './consent.js';
import { normaliseKeyword, reservedWords } from './keywords.js';
import { languageTag } from './contacts.js';
import { configurePseudonyms } from './pseudonyms.js';

export interface List {
  id: number;
  key: string;
  name: string;
  description: string | null;
  purpose: ConsentPurpose;
  keywords: Record<string, string[]>;
  doubleOptIn: boolean;
  welcome: Record<string, string>;
  prompt: Record<string, string>;
  frequency: Record<string, string>;
  defaultLanguage: string;
  isDefault: boolean;
  archivedAt: string | null;
  createdAt: string;
  updatedAt: string;
  subscribers?: number;
}

const perLanguage = <T extends z.ZodType>(value: T) =>
  z.record(z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'keys must be language codes such as es, en' }), value);

const keywordList = z.array(z.string().trim().min(1).max(30)).max(10);

export const listInputSchema = z.object({
  key: z.string().trim().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: 'must be lower-case letters, digits, - or _ (at most 64)' }),
  name: z.string().trim().min(1).max(200),
  description: z.string().trim().max(2000).nullable().optional(),
  purpose: z.enum(CONSENT_PURPOSES).default('updates'),
  keywords: perLanguage(keywordList).default({}),
  doubleOptIn: z.boolean().default(true),
  welcome: perLanguage(z.string().trim().min(1).max(1000)).default({}),
  prompt: perLanguage(z.string().trim().min(1).max(1000)).default({}),
  frequency: perLanguage(z.string().trim().min(1).max(100)).default({}),
  defaultLanguage: languageTag,
  isDefault: z.boolean().default(false),
});
export type ListInput = z.input<typeof listInputSchema>;
export const listUpdateSchema = listInputSchema.omit({ key: true }).partial().extend({ archived: z.boolean().optional() });
export type ListUpdate = z.input<typeof listUpdateSchema>;

const json = (v: unknown) => JSON.stringify(v ?? {});
const parse = <T>(v: unknown, fallback: T): T => (v === null || v === undefined || v === '' ? fallback : typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

export function readList(r: Record<string, unknown>): List {
  return {
    id: toInt(r.id),
    key: String(r.key),
    name: String(r.name),
    description: (r.description as string | null) ?? null,
    purpose: r.purpose as ConsentPurpose,
    keywords: parse(r.keywords, {}),
    doubleOptIn: toBool(r.double_opt_in),
    welcome: parse(r.welcome, {}),
    prompt: parse(r.prompt, {}),
    frequency: parse(r.frequencies, {}),
    defaultLanguage: String(r.default_language),
    isDefault: toBool(r.is_default),
    archivedAt: toDateOrNull(r.archived_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
    ...(r.subscribers !== undefined ? { subscribers: toInt(r.subscribers) } : {}),
  };
}

function invalid(details: Record<string, string>): HttpError {
  return new HttpError(400, 'validation_failed', 'The request is not valid', details);
}

function zodInvalid(error: z.ZodError): HttpError {
  return invalid(Object.fromEntries(error.issues.map((i) => [i.path.join('.') || '(root)', i.message])));
}

/** Normalises keywords and checks that none is reserved or used by another list. */
async function checkKeywords(knex: Knex, keywords: Record<string, string[]>, exceptListId?: number): Promise<Record<string, string[]>> {
  const reserved = reservedWords();
  const out: Record<string, string[]> = {};
  const errors: Record<string, string> = {};
  const others = await knex('lists').whereNull('archived_at').modify((q) => (exceptListId ? q.whereNot('id', exceptListId) : q)).select('key', 'keywords');
  const taken = new Map<string, string>();
  for (const o of others) for (const words of Object.values(parse<Record<string, string[]>>(o.keywords, {}))) for (const w of words) taken.set(normaliseKeyword(w), String(o.key));
  for (const [lang, words] of Object.entries(keywords)) {
    const norm: string[] = [];
    for (const w of words) {
      const n = normaliseKeyword(w);
      if (!n || n.includes(' ')) errors[`keywords.${lang}`] = `"${w}" must be one word`;
      else if (reserved.has(n)) errors[`keywords.${lang}`] = `"${w}" is a reserved word (STOP, JOIN, YES, HELP and the like)`;
      else if (taken.has(n)) errors[`keywords.${lang}`] = `"${w}" is already a keyword of the list "${taken.get(n)}"`;
      else if (!norm.includes(n)) norm.push(n);
    }
    if (norm.length) out[lang] = norm;
  }
  if (Object.keys(errors).length) throw invalid(errors);
  return out;
}

export async function listLists(knex: Knex, opts: { includeArchived?: boolean } = {}): Promise<List[]> {
  const counts = knex('subscriptions').where('status', 'active').groupBy('list_id').select('list_id').count({ n: '*' }).as('s');
  const q = knex('lists as l').leftJoin(counts, 's.list_id', 'l.id').orderBy([{ column: 'l.is_default', order: 'desc' }, { column: 'l.name', order: 'asc' }]).select('l.*', knex.raw('coalesce(s.n, 0) as subscribers'));
  if (!opts.includeArchived) q.whereNull('l.archived_at');
  return (await q).map(readList);
}

export async function getList(knex: Knex, id: number): Promise<List | null> {
  const row = await knex('lists').where('id', id).first();
  if (!row) return null;
  const n = await knex('subscriptions').where({ list_id: id, status: 'active' }).count({ n: '*' }).first();
  return readList({ ...row, subscribers: n?.n ?? 0 });
}

export async function requireList(knex: Knex, id: number): Promise<List> {
  const l = await getList(knex, id);
  if (!l) throw new HttpError(404, 'not_found', 'No such list');
  return l;
}

export async function createList(knex: Knex, input: ListInput): Promise<List> {
  const parsed = listInputSchema.safeParse(input);
  if (!parsed.success) throw zodInvalid(parsed.error);
  const l = parsed.data;
  if (await knex('lists').where('key', l.key).first('id')) throw new HttpError(409, 'conflict', 'A list with this key already exists', { key: 'already in use' });
  const keywords = await checkKeywords(knex, l.keywords);
  // There is always a default list while any list is open: the first one becomes it.
  const isDefault = l.isDefault || !(await knex('lists').where('is_default', true).whereNull('archived_at').first('id'));
  const id = await knex.transaction(async (trx) => {
    const now = new Date();
    if (isDefault) await trx('lists').update({ is_default: false, updated_at: now });
    const [row] = await trx('lists')
      .insert({
        key: l.key, name: l.name, description: l.description ?? null, purpose: l.purpose, keywords: json(keywords),
        double_opt_in: l.doubleOptIn, welcome: json(l.welcome), prompt: json(l.prompt), frequencies: json(l.frequency),
        frequency: l.frequency[l.defaultLanguage] ?? null, default_language: l.defaultLanguage, is_default: isDefault,
        created_at: now, updated_at: now,
      })
      .returning('id');
    return toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  });
  return (await getList(knex, id))!;
}

export async function updateList(knex: Knex, id: number, input: ListUpdate): Promise<List> {
  const parsed = listUpdateSchema.safeParse(input);
  if (!parsed.success) throw zodInvalid(parsed.error);
  const u = parsed.data;
  const current = await requireList(knex, id);
  const patch: Record<string, unknown> = {};
  if (u.name !== undefined) patch.name = u.name;
  if (u.description !== undefined) patch.description = u.description;
  if (u.purpose !== undefined) patch.purpose = u.purpose;
  if (u.keywords !== undefined) patch.keywords = json(await checkKeywords(knex, u.keywords, id));
  if (u.doubleOptIn !== undefined) patch.double_opt_in = u.doubleOptIn;
  if (u.welcome !== undefined) patch.welcome = json(u.welcome);
  if (u.prompt !== undefined) patch.prompt = json(u.prompt);
  if (u.defaultLanguage !== undefined) patch.default_language = u.defaultLanguage;
  if (u.frequency !== undefined || u.defaultLanguage !== undefined) {
    const freq = u.frequency ?? current.frequency;
    patch.frequencies = json(freq);
    patch.frequency = freq[u.defaultLanguage ?? current.defaultLanguage] ?? null;
  }
  if (u.archived !== undefined) {
    if (u.archived && (u.isDefault ?? current.isDefault)) throw invalid({ archived: 'the default list cannot be archived; make another list the default first' });
    patch.archived_at = u.archived ? (current.archivedAt ? new Date(current.archivedAt) : new Date()) : null;
  }
  await knex.transaction(async (trx) => {
    const now = new Date();
    if (u.isDefault === true) {
      await trx('lists').whereNot('id', id).update({ is_default: false, updated_at: now });
      patch.is_default = true;
    } else if (u.isDefault === false && current.isDefault) {
      throw invalid({ isDefault: 'make another list the default instead: there is always one default list' });
    }
    await trx('lists').where('id', id).update({ ...patch, updated_at: now });
  });
  return (await getList(knex, id))!;
}

/** The list a plain JOIN joins, created if the install has never had one. */
export async function defaultList(knex: Knex, config: Pick<Config, 'DEFAULT_LANGUAGE' | 'PROGRAMME_NAME'>): Promise<List | null> {
  let row = await knex('lists').where('is_default', true).whereNull('archived_at').first();
  if (!row && !(await knex('lists').first('id'))) {
    await createDefaultList(knex, config);
    row = await knex('lists').where('is_default', true).whereNull('archived_at').first();
  }
  return row ? readList(row) : null;
}

export const DEFAULT_LIST_KEY = 'updates';

/** The default list's name in the install's default language (staff can rename it). */
function defaultListName(language: string, programme: string): string {
  const names: Record<string, string> = { es: `Novedades de ${programme}`, pt: `Novidades de ${programme}`, fr: `Actualités de ${programme}` };
  return names[language.split('-')[0]] ?? `${programme} updates`;
}

async function createDefaultList(knex: Knex, config: Pick<Config, 'DEFAULT_LANGUAGE' | 'PROGRAMME_NAME'>): Promise<void> {
  const now = new Date();
  await knex('lists')
    .insert({
      key: DEFAULT_LIST_KEY,
      name: defaultListName(config.DEFAULT_LANGUAGE, config.PROGRAMME_NAME),
      description: null, // shown to people in the consent prompt: staff write it, in the list's language
      purpose: 'updates',
      keywords: json({ es: ['NOTICIAS'], en: ['NEWS'], pt: ['NOVIDADES'], fr: ['INFOS'] }),
      double_opt_in: true,
      welcome: json({}),
      prompt: json({}),
      frequencies: json({}),
      frequency: null,
      default_language: config.DEFAULT_LANGUAGE,
      is_default: true,
      created_at: now,
      updated_at: now,
    })
    .onConflict('key')
    .ignore();
}

/**
 * Start-up defaults for the contacts domain, idempotent: registers the pseudonym key and creates the
 * default list when the install has no list at all (a list deleted or renamed later is not recreated).
 * Called from src/main.ts; the JOIN step also calls `defaultList`, which does the same lazily.
 */
export async function ensureDefaults(db: Database, config: Config): Promise<void> {
  configurePseudonyms(config);
  await defaultList(db.knex, config);
}

/** All lists keyed by their keywords: normalised keyword → list and the keyword's language. */
export async function keywordIndex(knex: Knex): Promise<Map<string, { list: List; language: string }>> {
  const rows = (await knex('lists').whereNull('archived_at').orderBy('id')).map(readList);
  const map = new Map<string, { list: List; language: string }>();
  for (const l of rows) for (const [lang, words] of Object.entries(l.keywords)) for (const w of words) if (!map.has(normaliseKeyword(w))) map.set(normaliseKeyword(w), { list: l, language: lang });
  return map;
}

export interface Subscription {
  id: number;
  listId: number;
  listKey: string;
  listName: string;
  status: 'active' | 'ended';
  channel: string | null;
  consentId: number | null;
  joinedAt: string;
  endedAt: string | null;
  endedReason: string | null;
}

export async function subscriptionsOf(knex: Knex, contactId: number): Promise<Subscription[]> {
  const rows = await knex('subscriptions as s').join('lists as l', 'l.id', 's.list_id').where('s.contact_id', contactId).orderBy('s.id').select('s.*', 'l.key as list_key', 'l.name as list_name');
  return rows.map((r: Record<string, unknown>) => ({
    id: toInt(r.id),
    listId: toInt(r.list_id),
    listKey: String(r.list_key),
    listName: String(r.list_name),
    status: r.status as 'active' | 'ended',
    channel: (r.channel as string | null) ?? null,
    consentId: r.consent_id === null || r.consent_id === undefined ? null : toInt(r.consent_id),
    joinedAt: toDate(r.joined_at).toISOString(),
    endedAt: toDateOrNull(r.ended_at)?.toISOString() ?? null,
    endedReason: (r.ended_reason as string | null) ?? null,
  }));
}

export async function isSubscribed(knex: Knex, listId: number, contactId: number): Promise<boolean> {
  return Boolean(await knex('subscriptions').where({ list_id: listId, contact_id: contactId, status: 'active' }).first('id'));
}

/** Starts (or restarts) a subscription; `consentId` is the grant that justifies it. */
export async function subscribe(trx: Knex, s: { listId: number; contactId: number; channel: string | null; consentId: number | null; at?: Date }): Promise<void> {
  const at = s.at ?? new Date();
  await trx('subscriptions')
    .insert({ list_id: s.listId, contact_id: s.contactId, status: 'active', channel: s.channel, consent_id: s.consentId, joined_at: at, ended_at: null, ended_reason: null })
    .onConflict(['list_id', 'contact_id'])
    .merge(['status', 'channel', 'consent_id', 'joined_at', 'ended_at', 'ended_reason']);
}

/** Ends every active subscription of a contact. Returns the lists ended. */
export async function endSubscriptions(trx: Knex, contactId: number, reason: 'stop' | 'leave' | 'staff' | 'erased', at = new Date()): Promise<number[]> {
  const ids = (await trx('subscriptions').where({ contact_id: contactId, status: 'active' }).pluck('list_id')).map(toInt);
  if (ids.length) await trx('subscriptions').where({ contact_id: contactId, status: 'active' }).update({ status: 'ended', ended_at: at, ended_reason: reason });
  return ids;
}
