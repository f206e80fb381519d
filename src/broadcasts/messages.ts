/**
 * The key-message bank: reviewed, translated messages that broadcasts and FAQ auto-replies send.
 *
 * A key message has a key, a title, a topic, and optionally the rumour it answers. Its content lives
 * in versions: per-language variants (Handlebars text over contact fields, see templates.ts, with an
 * optional approved WhatsApp template — name, language and parameters in order — for people outside
 * the 24-hour window) and optional media for WhatsApp (an image, a document or a voice note).
 *
 * Review (two-person rule):  draft ──submit──▶ submitted ──approve──▶ approved
 *                                 ◀──reject (with a note)──┘
 * A version is approved by a staff user with messages.approve who neither wrote nor edited it. Editing
 * an approved message makes a new draft version; the approved one keeps being the message's usable
 * version until the new one is approved, and then becomes `superseded`. Approved and superseded
 * versions never change: a broadcast records the exact version it sent.
 */
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { languageTag } from '../contacts/contacts.js';
import { listFields } from '../contacts/fields.js';
import { checkTemplate, knownVariables, suggest } from './templates.js';

export const TOPICS = ['health', 'cash', 'documents', 'protection', 'education', 'shelter', 'food', 'water', 'work', 'safety', 'registration', 'general'] as const;
export const MEDIA_KINDS = ['image', 'document', 'audio'] as const;
export const VERSION_STATUSES = ['draft', 'submitted', 'approved', 'superseded'] as const;
export type VersionStatus = (typeof VERSION_STATUSES)[number];

const CAPTION_LIMIT = 1024;

export const templateMapping = z.object({
  name: z.string().trim().regex(/^[a-z0-9_]{1,512}$/, { message: 'must be the approved template name: lower-case letters, digits and _' }),
  language: z.string().trim().regex(/^[a-z]{2,3}(_[A-Za-z]{2,4})?$/, { message: 'must be the template language code as WhatsApp names it, such as es or en_US' }),
  params: z.array(z.string().trim().min(1, { message: 'must not be empty' }).max(1024)).max(20).default([]),
});

export const variantSchema = z.object({
  text: z.string().trim().min(1, { message: 'write the message text' }).max(4096, { message: 'must be at most 4,096 characters (WhatsApp)' }),
  template: templateMapping.nullable().optional(),
});
export type Variant = { text: string; template?: { name: string; language: string; params: string[] } | null };

export const mediaSchema = z
  .object({
    kind: z.enum(MEDIA_KINDS),
    url: z.string().trim().regex(/^https:\/\/\S{1,2000}$/, { message: 'must be a https:// URL WhatsApp can fetch' }).optional(),
    id: z.string().trim().regex(/^[A-Za-z0-9_.-]{1,128}$/, { message: 'must be a WhatsApp media id' }).optional(),
    filename: z.string().trim().min(1).max(240).optional(),
  })
  .refine((m) => (m.url === undefined) !== (m.id === undefined), { message: 'give either url or id', path: ['url'] });
export type Media = z.output<typeof mediaSchema>;

const variants = z
  .record(z.string(), variantSchema)
  .transform((rec, ctx) => {
    const out: Record<string, Variant> = {};
    for (const [lang, v] of Object.entries(rec)) {
      const tag = languageTag.safeParse(lang);
      if (!tag.success) {
        ctx.addIssue({ code: 'custom', path: [lang], message: 'keys must be language codes such as es, en, pt-BR' });
        continue;
      }
      out[tag.data] = v;
    }
    return out;
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'write the message in at least one language' });

export const messageKey = z.string().trim().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: 'use lower-case letters, digits, - and _ (such as vaccination-saturday)' });
export const topic = z.string().trim().toLowerCase().regex(/^[a-z][a-z0-9_-]{0,31}$/, { message: 'use a short lower-case word such as health, cash, documents, protection' });

export const messageInput = z.object({
  key: messageKey,
  title: z.string().trim().min(1).max(200),
  topic,
  rumour: z.string().trim().max(2000).nullable().optional(),
  variants,
  media: mediaSchema.nullable().optional(),
});
export const messagePatch = z.object({
  title: z.string().trim().min(1).max(200).optional(),
  topic: topic.optional(),
  rumour: z.string().trim().max(2000).nullable().optional(),
  variants: variants.optional(),
  media: mediaSchema.nullable().optional(),
  archived: z.boolean().optional(),
});

export interface MessageVersion {
  id: number;
  messageId: number;
  version: number;
  status: VersionStatus;
  variants: Record<string, Variant>;
  media: Media | null;
  authorId: number | null;
  authorLabel: string | null;
  contributors: number[];
  submittedAt: string | null;
  reviewedById: number | null;
  reviewedByLabel: string | null;
  reviewedAt: string | null;
  reviewNote: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface KeyMessage {
  id: number;
  key: string;
  title: string;
  topic: string;
  rumour: string | null;
  archivedAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** The version broadcasts and FAQ replies use: the latest approved one. */
  approved: MessageVersion | null;
  /** The version being written or reviewed, if any. */
  draft: MessageVersion | null;
  languages: string[];
}

const parseJson = <T>(v: unknown, fallback: T): T => (v === null || v === undefined || v === '' ? fallback : typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

export function readVersion(r: Record<string, unknown>): MessageVersion {
  return {
    id: toInt(r.id),
    messageId: toInt(r.message_id),
    version: toInt(r.version),
    status: String(r.status) as VersionStatus,
    variants: parseJson(r.variants, {}),
    media: parseJson(r.media, null),
    authorId: r.author_id === null || r.author_id === undefined ? null : toInt(r.author_id),
    authorLabel: (r.author_label as string | null) ?? null,
    contributors: parseJson<number[]>(r.contributors, []),
    submittedAt: toDateOrNull(r.submitted_at)?.toISOString() ?? null,
    reviewedById: r.reviewed_by_id === null || r.reviewed_by_id === undefined ? null : toInt(r.reviewed_by_id),
    reviewedByLabel: (r.reviewed_by_label as string | null) ?? null,
    reviewedAt: toDateOrNull(r.reviewed_at)?.toISOString() ?? null,
    reviewNote: (r.review_note as string | null) ?? null,
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
  };
}

/**
 * The staff user behind an actor: a signed-in user, or the user who created an API token (a token
 * acts for its creator). Null for the system, the CLI, and tokens created from the command line.
 */
export async function personOf(knex: Knex, actor: Actor): Promise<number | null> {
  if (actor.type === 'staff') return actor.id;
  if (actor.type === 'token' && actor.id !== null) {
    const row = await knex('api_tokens').where('id', actor.id).first('created_by_id');
    return row?.created_by_id === null || row?.created_by_id === undefined ? null : toInt(row.created_by_id);
  }
  return actor.userId ?? null;
}

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/** Syntax problems of every template of a version, keyed like the request body ("variants.es.text"). */
export function syntaxProblems(vs: Record<string, Variant>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [lang, v] of Object.entries(vs)) {
    const t = checkTemplate(v.text);
    if (t.errors.length) out[`variants.${lang}.text`] = t.errors.join('; ');
    (v.template?.params ?? []).forEach((p, i) => {
      const c = checkTemplate(p);
      if (c.errors.length) out[`variants.${lang}.template.params.${i}`] = c.errors.join('; ');
    });
  }
  return out;
}

/**
 * What stops a version from being approved: unknown variables (with "did you mean"), template
 * parameters that WhatsApp would refuse, captions too long for the media. Keyed like the request body.
 */
export async function approvalProblems(knex: Knex, v: Pick<MessageVersion, 'variants' | 'media'>): Promise<Record<string, string>> {
  const out = syntaxProblems(v.variants);
  const fields = (await listFields(knex)).map((f) => f.key);
  const known = knownVariables(fields);
  const check = (where: string, source: string) => {
    const unknown = checkTemplate(source).variables.filter((x) => !known.has(x));
    if (unknown.length === 0 || out[where]) return;
    out[where] = unknown
      .map((x) => {
        const s = suggest(x, known);
        return `unknown variable {{${x}}}${s ? ` (did you mean {{${s}}}?)` : ''}`;
      })
      .join('; ') + `; known: ${[...known].join(', ')}`;
  };
  for (const [lang, variant] of Object.entries(v.variants)) {
    check(`variants.${lang}.text`, variant.text);
    variant.template?.params.forEach((p, i) => check(`variants.${lang}.template.params.${i}`, p));
    if (v.media && v.media.kind !== 'audio' && [...variant.text].length > CAPTION_LIMIT && !out[`variants.${lang}.text`]) {
      out[`variants.${lang}.text`] = `is the caption of the ${v.media.kind}: at most ${CAPTION_LIMIT} characters on WhatsApp (it has ${[...variant.text].length})`;
    }
  }
  return out;
}

async function versionsOf(knex: Knex, messageIds: number[]): Promise<Map<number, MessageVersion[]>> {
  const out = new Map<number, MessageVersion[]>();
  if (messageIds.length === 0) return out;
  const rows = await knex('key_message_versions').whereIn('message_id', messageIds).orderBy('version', 'desc');
  for (const r of rows) {
    const v = readVersion(r);
    const list = out.get(v.messageId) ?? [];
    list.push(v);
    out.set(v.messageId, list);
  }
  return out;
}

function readMessage(r: Record<string, unknown>, versions: MessageVersion[]): KeyMessage {
  const approved = versions.find((v) => v.status === 'approved') ?? null;
  const draft = versions.find((v) => v.status === 'draft' || v.status === 'submitted') ?? null;
  const current = draft ?? approved ?? versions[0];
  return {
    id: toInt(r.id),
    key: String(r.key),
    title: String(r.title),
    topic: String(r.topic),
    rumour: (r.rumour as string | null) ?? null,
    archivedAt: toDateOrNull(r.archived_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
    approved,
    draft,
    languages: Object.keys(current?.variants ?? {}),
  };
}

export async function findMessage(knex: Knex, ref: number | string): Promise<KeyMessage | null> {
  const r = await knex('key_messages').where(typeof ref === 'number' ? 'id' : 'key', ref).first();
  if (!r) return null;
  const versions = (await versionsOf(knex, [toInt(r.id)])).get(toInt(r.id)) ?? [];
  return readMessage(r, versions);
}

export async function getMessage(knex: Knex, ref: number | string): Promise<KeyMessage> {
  const m = await findMessage(knex, ref);
  if (!m) throw notFound('There is no such key message');
  return m;
}

export async function messageVersions(knex: Knex, messageId: number): Promise<MessageVersion[]> {
  await getMessage(knex, messageId);
  return (await versionsOf(knex, [messageId])).get(messageId) ?? [];
}

export async function getVersion(knex: Knex, versionId: number): Promise<MessageVersion> {
  const r = await knex('key_message_versions').where('id', versionId).first();
  if (!r) throw notFound('There is no such key message version');
  return readVersion(r);
}

export interface MessageSearch {
  topic?: string;
  search?: string;
  /** approved: has an approved version; review: a version awaits review; draft: has a draft. */
  state?: 'approved' | 'review' | 'draft';
  rumours?: boolean;
  archived?: boolean;
  limit?: number;
  offset?: number;
}

export async function listMessages(knex: Knex, s: MessageSearch = {}): Promise<{ data: KeyMessage[]; total: number }> {
  const limit = Math.min(Math.max(s.limit ?? 50, 1), 200);
  const q = knex('key_messages as m');
  if (s.archived) q.whereNotNull('m.archived_at');
  else q.whereNull('m.archived_at');
  if (s.topic) q.where('m.topic', s.topic);
  if (s.rumours) q.whereNotNull('m.rumour');
  if (s.search) {
    const term = s.search.toLowerCase().slice(0, 100);
    q.where((b) => b.whereRaw('instr(lower(??), ?) > 0', ['m.key', term]).orWhereRaw('instr(lower(??), ?) > 0', ['m.title', term]));
  }
  if (s.state) {
    const statuses = s.state === 'approved' ? ['approved'] : s.state === 'review' ? ['submitted'] : ['draft'];
    q.whereExists(function (this: Knex.QueryBuilder) {
      this.select(knex.raw('1')).from('key_message_versions as v').whereRaw('?? = ??', ['v.message_id', 'm.id']).whereIn('v.status', statuses);
    });
  }
  const [{ n }] = await q.clone().count({ n: '*' });
  const rows = await q.clone().select('m.*').orderBy('m.updated_at', 'desc').orderBy('m.id', 'desc').limit(limit).offset(s.offset ?? 0);
  const versions = await versionsOf(knex, rows.map((r: Record<string, unknown>) => toInt(r.id)));
  return { data: rows.map((r: Record<string, unknown>) => readMessage(r, versions.get(toInt(r.id)) ?? [])), total: toInt(n) };
}

function invalid(details: Record<string, string>, message = 'The key message is not valid'): HttpError {
  return new HttpError(400, 'validation_failed', message, details);
}

export async function createMessage(db: Database, actor: Actor, input: z.input<typeof messageInput>): Promise<KeyMessage> {
  const data = messageInput.parse(input);
  const problems = syntaxProblems(data.variants);
  if (Object.keys(problems).length) throw invalid(problems);
  const person = await personOf(db.knex, actor);
  const now = new Date();
  const id = await db.knex.transaction(async (trx) => {
    if (await trx('key_messages').where('key', data.key).first('id')) throw new HttpError(409, 'conflict', 'A key message with this key exists', { key: 'is already used by another key message' });
    const [row] = await trx('key_messages')
      .insert({ key: data.key, title: data.title, topic: data.topic, rumour: data.rumour ?? null, created_by_id: person, created_at: now, updated_at: now })
      .returning('id');
    const messageId = toInt(typeof row === 'object' ? row.id : row);
    await trx('key_message_versions').insert({
      message_id: messageId,
      version: 1,
      status: 'draft',
      variants: JSON.stringify(data.variants),
      media: json(data.media),
      author_id: person,
      author_label: actor.label,
      contributors: JSON.stringify(person === null ? [] : [person]),
      created_at: now,
      updated_at: now,
    });
    return messageId;
  });
  await audit(db, actor, { action: 'key_message.create', entityType: 'key_message', entityId: id, detail: { key: data.key, languages: Object.keys(data.variants) } });
  return getMessage(db.knex, id);
}

/**
 * Changes a key message. Title, topic and rumour change in place. New content (variants, media) goes
 * into the open draft, or — when the message has none — into a new draft version copied from the
 * approved one; a submitted version that is edited goes back to draft.
 */
export async function updateMessage(db: Database, actor: Actor, id: number, input: z.input<typeof messagePatch>): Promise<KeyMessage> {
  const data = messagePatch.parse(input);
  if (data.variants) {
    const problems = syntaxProblems(data.variants);
    if (Object.keys(problems).length) throw invalid(problems);
  }
  const person = await personOf(db.knex, actor);
  const now = new Date();
  let versionTouched: number | null = null;
  await db.knex.transaction(async (trx) => {
    const m = await trx('key_messages').where('id', id).first();
    if (!m) throw notFound('There is no such key message');
    const meta: Record<string, unknown> = {};
    if (data.title !== undefined) meta.title = data.title;
    if (data.topic !== undefined) meta.topic = data.topic;
    if (data.rumour !== undefined) meta.rumour = data.rumour;
    if (data.archived !== undefined) meta.archived_at = data.archived ? now : null;
    if (data.variants !== undefined || data.media !== undefined) {
      const versions = (await trx('key_message_versions').where('message_id', id).orderBy('version', 'desc')).map(readVersion);
      const open = versions.find((v) => v.status === 'draft' || v.status === 'submitted');
      const base = open ?? versions.find((v) => v.status === 'approved') ?? versions[0];
      const nextVariants = data.variants ?? base.variants;
      const nextMedia = data.media !== undefined ? data.media : base.media;
      if (open) {
        const contributors = new Set(open.contributors);
        if (person !== null) contributors.add(person);
        await trx('key_message_versions').where('id', open.id).update({
          variants: JSON.stringify(nextVariants),
          media: json(nextMedia),
          status: 'draft',
          submitted_at: null,
          contributors: JSON.stringify([...contributors]),
          updated_at: now,
        });
        versionTouched = open.version;
      } else {
        const version = versions[0].version + 1;
        await trx('key_message_versions').insert({
          message_id: id,
          version,
          status: 'draft',
          variants: JSON.stringify(nextVariants),
          media: json(nextMedia),
          author_id: person,
          author_label: actor.label,
          contributors: JSON.stringify(person === null ? [] : [person]),
          created_at: now,
          updated_at: now,
        });
        versionTouched = version;
      }
    }
    meta.updated_at = now;
    await trx('key_messages').where('id', id).update(meta);
  });
  await audit(db, actor, { action: 'key_message.update', entityType: 'key_message', entityId: id, detail: { changed: Object.keys(data), version: versionTouched } });
  return getMessage(db.knex, id);
}

async function openVersion(knex: Knex, id: number): Promise<MessageVersion> {
  await getMessage(knex, id);
  const r = await knex('key_message_versions').where('message_id', id).whereIn('status', ['draft', 'submitted']).orderBy('version', 'desc').first();
  if (!r) throw new HttpError(409, 'conflict', 'This key message has no draft: edit it to start a new version');
  return readVersion(r);
}

/** Puts the open draft up for review. */
export async function submitMessage(db: Database, actor: Actor, id: number): Promise<KeyMessage> {
  const v = await openVersion(db.knex, id);
  if (v.status === 'submitted') throw new HttpError(409, 'conflict', `Version ${v.version} is already waiting for review`);
  const problems = syntaxProblems(v.variants);
  if (Object.keys(problems).length) throw invalid(problems);
  await db.knex('key_message_versions').where({ id: v.id, status: 'draft' }).update({ status: 'submitted', submitted_at: new Date(), review_note: null, updated_at: new Date() });
  await audit(db, actor, { action: 'key_message.submit', entityType: 'key_message', entityId: id, detail: { version: v.version } });
  return getMessage(db.knex, id);
}

/**
 * Approves the version waiting for review. The approver must be a staff user who neither wrote nor
 * edited it, and every variable must be a known contact field. The previously approved version is
 * superseded.
 */
export async function approveMessage(db: Database, actor: Actor, id: number, opts: { version?: number } = {}): Promise<KeyMessage> {
  const v = await openVersion(db.knex, id);
  if (opts.version !== undefined && opts.version !== v.version) throw new HttpError(409, 'conflict', `Version ${opts.version} is not the one waiting for review (version ${v.version} is)`);
  if (v.status !== 'submitted') throw new HttpError(409, 'conflict', `Version ${v.version} is a draft: submit it for review first`);
  const person = await personOf(db.knex, actor);
  if (person === null) throw new HttpError(403, 'approver_unknown', 'Approval needs a staff user: sign in, or use an API token that a staff user created');
  if (person === v.authorId || v.contributors.includes(person)) {
    throw new HttpError(403, 'two_person_rule', 'You wrote or edited this version: another staff user with the right to approve must review it');
  }
  const problems = await approvalProblems(db.knex, v);
  if (Object.keys(problems).length) throw invalid(problems, 'This version cannot be approved');
  const now = new Date();
  const reviewer = actor.type === 'token' ? `${actor.label} (for staff user ${person})` : actor.label;
  await db.knex.transaction(async (trx) => {
    const n = await trx('key_message_versions').where({ id: v.id, status: 'submitted' }).update({ status: 'approved', reviewed_by_id: person, reviewed_by_label: reviewer.slice(0, 254), reviewed_at: now, updated_at: now });
    if (n !== 1) throw new HttpError(409, 'conflict', 'The version changed while you were reviewing it; reload and review again');
    await trx('key_message_versions').where('message_id', id).where('status', 'approved').whereNot('id', v.id).update({ status: 'superseded', updated_at: now });
    await trx('key_messages').where('id', id).update({ updated_at: now });
  });
  await audit(db, actor, { action: 'key_message.approve', entityType: 'key_message', entityId: id, detail: { version: v.version, versionId: v.id } });
  return getMessage(db.knex, id);
}

/** Sends the version under review back to draft, with a note for its author. */
export async function rejectMessage(db: Database, actor: Actor, id: number, note: string): Promise<KeyMessage> {
  const v = await openVersion(db.knex, id);
  if (v.status !== 'submitted') throw new HttpError(409, 'conflict', `Version ${v.version} is not waiting for review`);
  const person = await personOf(db.knex, actor);
  const now = new Date();
  await db.knex('key_message_versions').where({ id: v.id, status: 'submitted' }).update({ status: 'draft', submitted_at: null, review_note: note.slice(0, 2000), reviewed_by_id: person, reviewed_by_label: actor.label.slice(0, 254), reviewed_at: now, updated_at: now });
  await audit(db, actor, { action: 'key_message.reject', entityType: 'key_message', entityId: id, detail: { version: v.version } });
  return getMessage(db.knex, id);
}

/** The usable version of a message (approved, not archived), or an error saying why there is none. */
export async function usableVersion(knex: Knex, messageId: number): Promise<{ message: KeyMessage; version: MessageVersion }> {
  const message = await getMessage(knex, messageId);
  if (message.archivedAt) throw new HttpError(409, 'message_archived', 'This key message is archived');
  if (!message.approved) throw new HttpError(409, 'message_not_approved', 'This key message has no approved version: it must be approved by a second staff user before it can be sent');
  return { message, version: message.approved };
}
