/**
 * FAQ entries: keywords per language that a key message answers. The router's 'faq' stage (after
 * global keywords, confirmations, list joins and open sessions; before the staff inbox) replies with
 * the message's approved version when an inbound text contains a keyword as a whole word or phrase,
 * case- and accent-insensitively ("¿Dónde me VACUNO?" matches VACUNO). When several entries match,
 * the longest keyword wins. The reply is in the contact's language, else the keyword's, else the
 * programme's, and goes back on the medium and address the question came from.
 */
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { normaliseKeyword, reservedWords } from '../contacts/keywords.js';
import { enqueue } from '../messaging/outbox.js';
import type { RouterStep } from '../messaging/types.js';
import { variantLanguage } from './audience.js';
import { pickVariant, renderContent } from './content.js';
import { loadContactData } from './render.js';
import { personOf, readVersion, type MessageVersion } from './messages.js';
import { recordFaqHit } from './stats.js';

const keywordList = z.array(z.string().trim().min(1).max(60)).min(1).max(20);
const keywords = z
  .record(z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'keys must be language codes such as es, en' }), keywordList)
  .refine((k) => Object.keys(k).length > 0, { message: 'give keywords in at least one language' });

export const faqInput = z.object({ messageId: z.number().int().positive(), keywords, active: z.boolean().default(true) });
export const faqPatch = z.object({ messageId: z.number().int().positive().optional(), keywords: keywords.optional(), active: z.boolean().optional() });

export interface FaqEntry {
  id: number;
  messageId: number;
  messageKey?: string;
  messageTitle?: string;
  /** Whether the message has an approved version (an entry answers only then). */
  answering?: boolean;
  keywords: Record<string, string[]>;
  active: boolean;
  createdAt: string;
  updatedAt: string;
}

const parseJson = <T>(v: unknown, fallback: T): T => (v === null || v === undefined || v === '' ? fallback : typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

function readFaq(r: Record<string, unknown>): FaqEntry {
  return {
    id: toInt(r.id),
    messageId: toInt(r.message_id),
    ...(r.message_key !== undefined ? { messageKey: String(r.message_key), messageTitle: String(r.message_title), answering: toInt(r.approved) > 0 } : {}),
    keywords: parseJson(r.keywords, {}),
    active: toBool(r.active),
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
  };
}

function withMessage(knex: Knex) {
  return knex('faq_entries as f')
    .join('key_messages as m', 'm.id', 'f.message_id')
    .select('f.*', 'm.key as message_key', 'm.title as message_title')
    .select(knex.raw("(SELECT count(*) FROM key_message_versions v WHERE v.message_id = f.message_id AND v.status = 'approved') AS approved"));
}

export async function listFaq(knex: Knex, opts: { limit?: number; offset?: number; messageId?: number } = {}): Promise<{ data: FaqEntry[]; total: number }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const base = knex('faq_entries');
  if (opts.messageId) base.where('message_id', opts.messageId);
  const [{ n }] = await base.clone().count({ n: '*' });
  const q = withMessage(knex).orderBy('f.id', 'desc').limit(limit).offset(opts.offset ?? 0);
  if (opts.messageId) q.where('f.message_id', opts.messageId);
  return { data: (await q).map(readFaq), total: toInt(n) };
}

export async function getFaq(knex: Knex, id: number): Promise<FaqEntry> {
  const r = await withMessage(knex).where('f.id', id).first();
  if (!r) throw notFound('There is no such FAQ entry');
  return readFaq(r);
}

/** Normalises the keywords; refuses reserved words and keywords another active entry answers. */
export async function cleanKeywords(knex: Knex, kw: Record<string, string[]>, exceptId?: number): Promise<Record<string, string[]>> {
  const problems: Record<string, string> = {};
  const reserved = reservedWords();
  const out: Record<string, string[]> = {};
  for (const [lang, words] of Object.entries(kw)) {
    const norm = [...new Set(words.map(normaliseKeyword).filter(Boolean))];
    if (norm.length === 0) problems[`keywords.${lang}`] = 'the keywords are empty once punctuation is removed';
    const bad = norm.filter((w) => reserved.has(w));
    if (bad.length) problems[`keywords.${lang}`] = `${bad.join(', ')} ${bad.length === 1 ? 'is a reserved word' : 'are reserved words'} (STOP, HELP, JOIN, YES, NO and the like always mean that)`;
    out[lang] = norm;
  }
  const others = await knex('faq_entries').where('active', true).modify((q) => (exceptId ? q.whereNot('id', exceptId) : q)).select('id', 'keywords');
  const taken = new Map<string, number>();
  for (const o of others) for (const words of Object.values(parseJson<Record<string, string[]>>(o.keywords, {}))) for (const w of words) taken.set(w, toInt(o.id));
  for (const [lang, words] of Object.entries(out)) {
    const clash = words.filter((w) => taken.has(w));
    if (clash.length && !problems[`keywords.${lang}`]) problems[`keywords.${lang}`] = clash.map((w) => `${w} already answers FAQ entry ${taken.get(w)}`).join('; ');
  }
  if (Object.keys(problems).length) throw new HttpError(400, 'validation_failed', 'The FAQ entry is not valid', problems);
  return out;
}

async function checkMessage(knex: Knex, messageId: number): Promise<void> {
  if (!(await knex('key_messages').where('id', messageId).first('id'))) throw new HttpError(400, 'validation_failed', 'The FAQ entry is not valid', { messageId: `there is no key message ${messageId}` });
}

export async function createFaq(db: Database, actor: Actor, input: z.input<typeof faqInput>): Promise<FaqEntry> {
  const data = faqInput.parse(input);
  await checkMessage(db.knex, data.messageId);
  const kw = await cleanKeywords(db.knex, data.keywords);
  const now = new Date();
  const [row] = await db.knex('faq_entries').insert({ message_id: data.messageId, keywords: JSON.stringify(kw), active: data.active, created_by_id: await personOf(db.knex, actor), created_at: now, updated_at: now }).returning('id');
  const id = toInt(typeof row === 'object' ? row.id : row);
  faqCache.delete(db.knex);
  await audit(db, actor, { action: 'faq.create', entityType: 'faq_entry', entityId: id, detail: { messageId: data.messageId } });
  return getFaq(db.knex, id);
}

export async function updateFaq(db: Database, actor: Actor, id: number, input: z.input<typeof faqPatch>): Promise<FaqEntry> {
  const data = faqPatch.parse(input);
  await getFaq(db.knex, id);
  const changes: Record<string, unknown> = { updated_at: new Date() };
  if (data.messageId !== undefined) {
    await checkMessage(db.knex, data.messageId);
    changes.message_id = data.messageId;
  }
  if (data.keywords !== undefined) changes.keywords = JSON.stringify(await cleanKeywords(db.knex, data.keywords, id));
  if (data.active !== undefined) changes.active = data.active;
  await db.knex('faq_entries').where('id', id).update(changes);
  faqCache.delete(db.knex);
  await audit(db, actor, { action: 'faq.update', entityType: 'faq_entry', entityId: id, detail: { changed: Object.keys(data) } });
  return getFaq(db.knex, id);
}

export async function deleteFaq(db: Database, actor: Actor, id: number): Promise<void> {
  await getFaq(db.knex, id);
  await db.knex('faq_entries').where('id', id).delete();
  faqCache.delete(db.knex);
  await audit(db, actor, { action: 'faq.delete', entityType: 'faq_entry', entityId: id });
}

// ------------------------------------------------------------------------------ matching

interface IndexEntry {
  keyword: string;
  language: string;
  entryId: number;
  version: MessageVersion;
}

/** Active entries whose message has an approved version, longest keyword first. Kept for 10 s per database. */
const faqCache = new Map<Knex, { at: number; index: IndexEntry[] }>();
const CACHE_MS = 10_000;

async function faqIndex(knex: Knex): Promise<IndexEntry[]> {
  const hit = faqCache.get(knex);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.index;
  const rows = await knex('faq_entries as f')
    .join('key_messages as m', 'm.id', 'f.message_id')
    .join('key_message_versions as v', function () {
      this.on('v.message_id', '=', 'f.message_id').andOnVal('v.status', '=', 'approved');
    })
    .where('f.active', true)
    .whereNull('m.archived_at')
    .select('f.id as entry_id', 'f.keywords', 'v.*');
  const index: IndexEntry[] = [];
  for (const r of rows as Record<string, unknown>[]) {
    const version = readVersion(r);
    for (const [language, words] of Object.entries(parseJson<Record<string, string[]>>(r.keywords, {}))) {
      for (const keyword of words) index.push({ keyword, language, entryId: toInt(r.entry_id), version });
    }
  }
  index.sort((a, b) => b.keyword.length - a.keyword.length || a.entryId - b.entryId);
  faqCache.set(knex, { at: Date.now(), index });
  return index;
}

/** The FAQ entry a text asks about, or null. */
export async function matchFaq(knex: Knex, text: string | null): Promise<IndexEntry | null> {
  const t = normaliseKeyword(text);
  if (!t) return null;
  const padded = ` ${t} `;
  for (const e of await faqIndex(knex)) if (padded.includes(` ${e.keyword} `)) return e;
  return null;
}

/** Router stage 'faq': answers a question that matches an FAQ entry with its key message. */
export const faqStep: RouterStep = async (ctx) => {
  if (ctx.contact.status === 'blocked' || ctx.message.kind !== 'text') return null;
  const { knex } = ctx.services.db;
  const hit = await matchFaq(knex, ctx.message.text);
  if (!hit) return null;
  const contact = (await loadContactData(knex, [ctx.contact.id])).get(ctx.contact.id);
  if (!contact) return null;
  // The contact's language, else the language of the keyword they used, else the programme's.
  const own = variantLanguage(ctx.contact.language, Object.keys(hit.version.variants));
  const { language } = pickVariant(hit.version, own ?? hit.language, ctx.services.config.DEFAULT_LANGUAGE);
  const content = renderContent({
    version: hit.version,
    language,
    contact,
    programme: ctx.services.config.PROGRAMME_NAME,
    policy: ctx.address.medium === 'sms' ? 'sms_only' : 'whatsapp_only',
    windowOpen: true, // they just wrote
  });
  await enqueue(knex, { contactId: ctx.contact.id, purpose: 'reply', content, language, channel: ctx.address.medium, addressId: ctx.address.id });
  await recordFaqHit(knex, { entryId: hit.entryId, messageId: hit.version.messageId, contactId: ctx.contact.id, at: ctx.message.receivedAt }); // for the dashboard's topics
  return 'faq';
};
