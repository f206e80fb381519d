/**
 * The staff inbox: conversations that no automatic step answered (route `inbox`, including
 * psychosocial handoffs) or whose routing failed (route `error`: "could not be handled
 * automatically"), one per contact, opened and reopened by the router (src/messaging/inbox.ts).
 *
 * An operator claims a conversation before answering, so that two operators never answer the same
 * person: the claim is one UPDATE that succeeds only when nobody holds the conversation, or when the
 * holder has not replied for CLAIM_TIMEOUT_MINUTES (an abandoned claim can be taken over). Only the
 * holder may reply; each reply renews the claim.
 *
 * A reply is an outbox row (purpose `reply`) to the address the person last wrote from. On WhatsApp,
 * free text goes only inside the 24-hour window that their last message opened; outside it the
 * operator sends an approved key message that maps a WhatsApp template. SMS has no window. The
 * dispatcher still checks at send time that the contact may receive it (active, or stopped after
 * having written since; never blocked or erased).
 *
 * Who sees what: conversations of erased contacts do not exist (404, not listed, not counted); a
 * restricted conversation (a psychosocial handoff, or a message set aside during a complaint intake)
 * exists only for holders of complaints.sensitive. The thread shows only the messages that waited for
 * staff and the replies sent from here — never complaint narratives or survey answers.
 *
 * Every read and change is audited with ids only (no message text).
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import type { Permission } from '../staff/roles.js';
import { enqueue, parseContent } from '../messaging/outbox.js';
import { UNHANDLED_ROUTES } from '../messaging/inbox.js';
import type { Medium, OutboundContent } from '../messaging/types.js';
import { normaliseKeyword, reservedWords } from '../contacts/keywords.js';
import { TOPICS, createMessage, listMessages, messageKey, submitMessage, usableVersion, type KeyMessage } from '../broadcasts/messages.js';
import { cleanKeywords, createFaq, type FaqEntry } from '../broadcasts/faq.js';
import { pickVariant, renderContent } from '../broadcasts/content.js';
import { loadContactData } from '../broadcasts/render.js';

/** A claim without a reply for this long may be taken over by another operator. */
export const CLAIM_TIMEOUT_MINUTES = 30;
const CLAIM_MS = CLAIM_TIMEOUT_MINUTES * 60_000;
/** WhatsApp's customer-service window, opened by the person's last message on the address. */
export const WINDOW_MS = 24 * 3_600_000;
/** Twilio's limit for one SMS message (it is sent in segments). */
const SMS_MAX = 1600;
const PREVIEW = 80;
const THREAD = 100;

export interface Viewer {
  actor: Actor;
  permissions: readonly Permission[];
}

const seesRestricted = (v: Viewer) => v.permissions.includes('complaints.sensitive');
/** Who holds a claim: the staff user or API token acting. */
export const actorKey = (a: Actor) => `${a.type}:${a.id ?? 0}`;

export const SHOW = ['all', 'mine', 'unclaimed'] as const;
export const STATUSES = ['open', 'closed'] as const;

export const listQuerySchema = z.object({
  show: z.enum(SHOW).default('all'),
  status: z.enum(STATUSES).default('open'),
  topic: z.string().trim().max(40).optional(),
  rumour: z.enum(['true', 'false']).optional(),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ListQuery = z.output<typeof listQuerySchema>;

export interface Claim {
  /** The staff user's name, or the actor's label (an e-mail, a token's name). */
  by: string;
  mine: boolean;
  at: Date;
  /** Older than the timeout: anyone may take it over. */
  stale: boolean;
}

export interface ConversationSummary {
  id: number;
  contactId: number;
  contactName: string | null;
  language: string | null;
  contactStatus: 'active' | 'stopped' | 'blocked';
  status: 'open' | 'closed';
  openedAt: Date;
  closedAt: Date | null;
  closedBy: string | null;
  lastMessageAt: Date;
  medium: Medium | null;
  /** The start of the newest unhandled message; null when it had no text or its text was erased. */
  preview: string | null;
  previewErased: boolean;
  hasError: boolean;
  restricted: boolean;
  topic: string | null;
  rumour: boolean;
  claim: Claim | null;
}

function preview(text: unknown): string | null {
  if (typeof text !== 'string' || !text) return null;
  const chars = [...text.replace(/\s+/g, ' ').trim()];
  return chars.length > PREVIEW ? chars.slice(0, PREVIEW - 1).join('') + '…' : chars.join('');
}

function readSummary(r: Record<string, unknown>, v: Viewer, now: number): ConversationSummary {
  const claimedBy = (r.claimed_by as string | null) ?? null;
  const claimedAt = toDateOrNull(r.claimed_at);
  return {
    id: toInt(r.id),
    contactId: toInt(r.contact_id),
    contactName: (r.contact_name as string | null) ?? null,
    language: (r.contact_language as string | null) ?? null,
    contactStatus: String(r.contact_status) as ConversationSummary['contactStatus'],
    status: String(r.status) as 'open' | 'closed',
    openedAt: toDate(r.opened_at),
    closedAt: toDateOrNull(r.closed_at),
    closedBy: (r.closed_by_label as string | null) ?? null,
    lastMessageAt: toDate(r.last_message_at),
    medium: (r.medium as Medium | null) ?? null,
    preview: preview(r.last_text),
    previewErased: (r.last_text === null || r.last_text === undefined) && r.last_erased !== null && r.last_erased !== undefined,
    hasError: toBool(r.has_error),
    restricted: toBool(r.restricted),
    topic: (r.topic as string | null) ?? null,
    rumour: toBool(r.rumour),
    claim:
      claimedBy && claimedAt
        ? {
            by: (r.claimer_name as string | null) || String(r.claimed_by_label ?? claimedBy),
            mine: claimedBy === actorKey(v.actor),
            at: claimedAt,
            stale: now - claimedAt.getTime() >= CLAIM_MS,
          }
        : null,
  };
}

/** Conversations the viewer may see: not of erased contacts; restricted ones only with complaints.sensitive. */
function visible(knex: Knex, v: Viewer): Knex.QueryBuilder {
  const q = knex('inbox_conversations as v').join('contacts as c', 'c.id', 'v.contact_id').whereNull('c.erased_at');
  if (!seesRestricted(v)) q.where('v.restricted', false);
  return q;
}

function withDetails(q: Knex.QueryBuilder): Knex.QueryBuilder {
  return q
    .leftJoin('contact_addresses as a', 'a.id', 'v.last_address_id')
    .leftJoin('inbound_messages as m', 'm.id', 'v.last_message_id')
    .leftJoin('staff_users as su', 'su.id', 'v.claimed_by_user_id')
    .select(
      'v.*',
      'c.name as contact_name',
      'c.language as contact_language',
      'c.status as contact_status',
      'a.channel as medium',
      'm.text as last_text',
      'm.text_erased_at as last_erased',
      'su.name as claimer_name',
    );
}

export interface InboxCounts {
  open: number;
  unclaimed: number;
  mine: number;
  rumours: number;
  errors: number;
}

/** Open conversations by claim, rumours and errors, as the viewer may see them. */
export async function inboxCounts(knex: Knex, v: Viewer, now = new Date()): Promise<InboxCounts> {
  const stale = new Date(now.getTime() - CLAIM_MS);
  const [r] = await visible(knex, v)
    .where('v.status', 'open')
    .select(
      knex.raw('count(*) as open'),
      knex.raw('sum(CASE WHEN v.claimed_by IS NULL OR v.claimed_at < ? THEN 1 ELSE 0 END) as unclaimed', [stale]),
      knex.raw('sum(CASE WHEN v.claimed_by = ? THEN 1 ELSE 0 END) as mine', [actorKey(v.actor)]),
      knex.raw('sum(CASE WHEN v.rumour = ? THEN 1 ELSE 0 END) as rumours', [true]),
      knex.raw('sum(CASE WHEN v.has_error = ? THEN 1 ELSE 0 END) as errors', [true]),
    );
  return { open: toInt(r?.open), unclaimed: toInt(r?.unclaimed), mine: toInt(r?.mine), rumours: toInt(r?.rumours), errors: toInt(r?.errors) };
}

/** Conversations, newest message first, with the filters; offset pagination with the total. */
export async function listConversations(db: Database, v: Viewer, query: z.input<typeof listQuerySchema> = {}, now = new Date()): Promise<{ data: ConversationSummary[]; total: number; counts: InboxCounts }> {
  const f = listQuerySchema.parse(query);
  const { knex } = db;
  const q = visible(knex, v).where('v.status', f.status);
  if (f.show === 'mine') q.where('v.claimed_by', actorKey(v.actor));
  if (f.show === 'unclaimed') q.where((w) => w.whereNull('v.claimed_by').orWhere('v.claimed_at', '<', new Date(now.getTime() - CLAIM_MS)));
  if (f.topic) q.where('v.topic', f.topic);
  if (f.rumour) q.where('v.rumour', f.rumour === 'true');
  const [{ n }] = await q.clone().count({ n: '*' });
  const rows = await withDetails(q.clone()).orderBy('v.last_message_at', 'desc').orderBy('v.id', 'desc').limit(f.limit).offset(f.offset);
  const data = rows.map((r: Record<string, unknown>) => readSummary(r, v, now.getTime()));
  await audit(db, v.actor, { action: 'inbox.list', entityType: 'inbox_conversation', detail: { results: data.length, show: f.show, status: f.status } });
  return { data, total: toInt(n), counts: await inboxCounts(knex, v, now) };
}

async function findRow(knex: Knex, v: Viewer, id: number): Promise<Record<string, unknown>> {
  const r = await withDetails(visible(knex, v).where('v.id', id)).first();
  if (!r) throw notFound('There is no such conversation');
  return r as Record<string, unknown>;
}

export interface ReplyAddress {
  id: number;
  medium: Medium;
  lastInboundAt: Date | null;
}

/** Where replies go: the address of the newest unhandled message, else the one the person used last. */
async function replyAddress(knex: Knex, contactId: number, preferred: number | null): Promise<ReplyAddress | null> {
  const rows = await knex('contact_addresses').where('contact_id', contactId).where('opted_out', false).select('id', 'channel', 'last_inbound_at');
  const all = rows.map((r: Record<string, unknown>) => ({ id: toInt(r.id), medium: String(r.channel) as Medium, lastInboundAt: toDateOrNull(r.last_inbound_at) }));
  const own = all.find((a) => a.id === preferred);
  if (own) return own;
  all.sort((a, b) => (b.lastInboundAt?.getTime() ?? -1) - (a.lastInboundAt?.getTime() ?? -1));
  return all[0] ?? null;
}

export interface WindowState {
  medium: Medium | null;
  /** WhatsApp only: SMS has no window. */
  applies: boolean;
  open: boolean;
  /** When the window closes (or closed); null without a message on WhatsApp. */
  until: Date | null;
}

function windowOf(addr: ReplyAddress | null, now: number): WindowState {
  if (!addr) return { medium: null, applies: false, open: false, until: null };
  if (addr.medium !== 'whatsapp') return { medium: addr.medium, applies: false, open: true, until: null };
  const until = addr.lastInboundAt ? new Date(addr.lastInboundAt.getTime() + WINDOW_MS) : null;
  return { medium: 'whatsapp', applies: true, open: until !== null && now < until.getTime(), until };
}

export interface ThreadItem {
  direction: 'in' | 'out';
  id: number;
  at: Date;
  medium: Medium | null;
  text: string | null;
  /** Retention (or erasure) removed the text. */
  erased: boolean;
  /** Inbound: what kind of message (text, button, media…). */
  kind?: string;
  /** Inbound: set aside because routing failed ("could not be handled automatically"). */
  error?: boolean;
  /** Outbound: the reply's id, how it was sent and where it stands. */
  replyId?: number;
  replyKind?: 'text' | 'key_message';
  asTemplate?: boolean;
  keyMessageId?: number | null;
  faqMessageId?: number | null;
  status?: string | null;
  errorCode?: string | null;
  by?: string;
}

export interface KeyMessageChoice {
  id: number;
  key: string;
  title: string;
  topic: string;
  /** The variant the person would get. */
  language: string;
  hasTemplate: boolean;
  /** Sendable now: inside the window (or SMS) any approved message; outside it only one with a template. */
  usable: boolean;
}

export interface Conversation extends ConversationSummary {
  window: WindowState;
  contactStoppedAt: Date | null;
  thread: ThreadItem[];
  /** Whether the viewer may reply now (holds the claim of an open conversation). */
  canReply: boolean;
}

function textOf(c: OutboundContent | null): string | null {
  if (!c) return null;
  return c.text ?? null;
}

async function thread(knex: Knex, conversationId: number, contactId: number): Promise<ThreadItem[]> {
  const inbound = await knex('inbound_messages as m')
    .leftJoin('contact_addresses as a', 'a.id', 'm.address_id')
    .where('m.contact_id', contactId)
    .whereIn('m.route', UNHANDLED_ROUTES)
    .orderBy('m.id', 'desc')
    .limit(THREAD)
    .select('m.id', 'm.kind', 'm.text', 'm.payload', 'm.route', 'm.received_at', 'm.text_erased_at', 'a.channel as medium');
  const replies = await knex('inbox_replies as r')
    .leftJoin('outbox as o', 'o.id', 'r.outbox_id')
    .leftJoin('staff_users as su', 'su.id', 'r.staff_user_id')
    .where('r.conversation_id', conversationId)
    .orderBy('r.id', 'desc')
    .limit(THREAD)
    .select('r.*', 'o.content', 'o.status as outbox_status', 'o.error_code', 'su.name as staff_name');
  const items: ThreadItem[] = [
    ...inbound.map((m: Record<string, unknown>) => ({
      direction: 'in' as const,
      id: toInt(m.id),
      at: toDate(m.received_at),
      medium: (m.medium as Medium | null) ?? null,
      text: (m.text as string | null) ?? (m.payload as string | null) ?? null,
      erased: m.text_erased_at !== null && m.text_erased_at !== undefined,
      kind: String(m.kind),
      error: m.route === 'error',
    })),
    ...replies.map((r: Record<string, unknown>) => {
      const content = parseContent(r.content);
      return {
        direction: 'out' as const,
        id: toInt(r.id),
        at: toDate(r.created_at),
        medium: String(r.medium) as Medium,
        text: textOf(content),
        erased: content === null,
        replyId: toInt(r.id),
        replyKind: String(r.kind) as 'text' | 'key_message',
        asTemplate: toBool(r.as_template),
        keyMessageId: r.key_message_id === null || r.key_message_id === undefined ? null : toInt(r.key_message_id),
        faqMessageId: r.faq_message_id === null || r.faq_message_id === undefined ? null : toInt(r.faq_message_id),
        status: (r.outbox_status as string | null) ?? null,
        errorCode: (r.error_code as string | null) ?? null,
        by: (r.staff_name as string | null) || String(r.actor_label),
      };
    }),
  ];
  // Oldest first, like a chat; the last THREAD of each side.
  items.sort((a, b) => a.at.getTime() - b.at.getTime() || (a.direction === b.direction ? a.id - b.id : a.direction === 'in' ? -1 : 1));
  return items;
}

/** One conversation with its thread and the WhatsApp window. Audited. */
export async function getConversation(db: Database, v: Viewer, id: number, now = new Date()): Promise<Conversation> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const summary = readSummary(r, v, now.getTime());
  const contact = await knex('contacts').where('id', summary.contactId).first('stopped_at');
  const addr = await replyAddress(knex, summary.contactId, r.last_address_id === null || r.last_address_id === undefined ? null : toInt(r.last_address_id));
  const items = await thread(knex, id, summary.contactId);
  await audit(db, v.actor, { action: 'inbox.view', entityType: 'inbox_conversation', entityId: id, detail: { contactId: summary.contactId } });
  return {
    ...summary,
    window: windowOf(addr, now.getTime()),
    contactStoppedAt: toDateOrNull(contact?.stopped_at),
    thread: items,
    canReply: summary.status === 'open' && summary.claim?.mine === true && summary.contactStatus !== 'blocked',
  };
}

/** Approved key messages an operator can send in this conversation now (by the contact's language and window). */
export async function keyMessageChoices(db: Database, config: Pick<Config, 'DEFAULT_LANGUAGE'>, c: Pick<Conversation, 'language' | 'window'>): Promise<KeyMessageChoice[]> {
  const { data } = await listMessages(db.knex, { state: 'approved', limit: 200 });
  const out: KeyMessageChoice[] = [];
  for (const m of data) {
    if (!m.approved) continue;
    const { language, variant } = pickVariant(m.approved, c.language, config.DEFAULT_LANGUAGE);
    const hasTemplate = Boolean(variant?.template);
    const usable = !c.window.applies || c.window.open || hasTemplate;
    out.push({ id: m.id, key: m.key, title: m.title, topic: m.topic, language, hasTemplate, usable });
  }
  return out.sort((a, b) => Number(b.usable) - Number(a.usable) || a.title.localeCompare(b.title));
}

// ------------------------------------------------------------------------------------ claims

function claimedElsewhere(r: Record<string, unknown>, now: number): HttpError {
  const at = toDateOrNull(r.claimed_at);
  const who = (r.claimer_name as string | null) || String(r.claimed_by_label ?? 'another operator');
  const free = at ? new Date(at.getTime() + CLAIM_MS) : null;
  return new HttpError(409, 'claimed_by_other', `${who} is answering this person${at ? ` (claimed at ${at.toISOString()})` : ''}; it can be taken over ${free && free.getTime() > now ? `after ${free.toISOString()}, ${CLAIM_TIMEOUT_MINUTES} minutes without a reply` : 'now'}`, {
    claimedBy: who,
    claimedAt: at?.toISOString() ?? null,
  });
}

const closedError = () => new HttpError(409, 'conversation_closed', 'This conversation is closed; reopen it first (it also reopens by itself when the person writes again)');

/**
 * Claims an open conversation for the viewer: one UPDATE that succeeds only when nobody holds it,
 * the viewer already does, or the holder's claim is older than the timeout. Of operators claiming at
 * once exactly one wins; the others get 409 naming who holds it.
 */
export async function claimConversation(db: Database, v: Viewer, id: number, now = new Date()): Promise<{ tookOver: boolean }> {
  const { knex } = db;
  const before = await findRow(knex, v, id);
  const key = actorKey(v.actor);
  const n = await knex('inbox_conversations')
    .where({ id, status: 'open' })
    .where((w) => w.whereNull('claimed_by').orWhere('claimed_by', key).orWhere('claimed_at', '<', new Date(now.getTime() - CLAIM_MS)))
    .update({ claimed_by: key, claimed_by_user_id: v.actor.type === 'staff' ? v.actor.id : null, claimed_by_label: v.actor.label.slice(0, 254), claimed_at: now, updated_at: now });
  if (n === 0) {
    const r = await findRow(knex, v, id);
    if (r.status !== 'open') throw closedError();
    throw claimedElsewhere(r, now.getTime());
  }
  const previous = (before.claimed_by as string | null) ?? null;
  const tookOver = previous !== null && previous !== key;
  await audit(db, v.actor, { action: 'inbox.claim', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(before.contact_id), ...(tookOver ? { tookOverFrom: previous } : {}) } });
  return { tookOver };
}

/** Gives the conversation back (only its holder can). */
export async function releaseConversation(db: Database, v: Viewer, id: number, now = new Date()): Promise<void> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const n = await knex('inbox_conversations').where({ id, claimed_by: actorKey(v.actor) }).update({ claimed_by: null, claimed_by_user_id: null, claimed_by_label: null, claimed_at: null, updated_at: now });
  if (n === 0) throw new HttpError(409, 'not_claimer', 'Only the operator who claimed this conversation can release it');
  await audit(db, v.actor, { action: 'inbox.release', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(r.contact_id) } });
}

// ------------------------------------------------------------------------------------ replies

export const replySchema = z
  .object({
    text: z.string().trim().min(1, { message: 'write the reply' }).max(4096, { message: 'must be at most 4,096 characters (WhatsApp)' }).optional(),
    keyMessageId: z.coerce.number().int().positive().optional(),
  })
  .refine((b) => (b.text === undefined) !== (b.keyMessageId === undefined), { message: 'send either text or keyMessageId', path: ['text'] });
export type ReplyInput = z.input<typeof replySchema>;

export interface ReplyResult {
  replyId: number;
  outboxId: number;
  kind: 'text' | 'key_message';
  asTemplate: boolean;
  medium: Medium;
  language: string;
}

function notHolder(r: Record<string, unknown>, key: string, now: number): HttpError {
  if (r.status !== 'open') return closedError();
  if (!r.claimed_by) return new HttpError(409, 'not_claimed', 'Claim this conversation first: only the operator who claimed it may reply');
  if (r.claimed_by !== key) return claimedElsewhere(r, now);
  return new HttpError(409, 'not_claimed', 'Claim this conversation first: only the operator who claimed it may reply');
}

/**
 * Replies in a conversation the viewer holds: free text (inside the WhatsApp window, or on SMS) or an
 * approved key message (as its WhatsApp template outside the window). Queued in the outbox with
 * purpose `reply` to the address the person wrote from; the claim is renewed in the same transaction.
 */
export async function replyToConversation(db: Database, config: Pick<Config, 'DEFAULT_LANGUAGE' | 'PROGRAMME_NAME'>, v: Viewer, id: number, input: ReplyInput, now = new Date()): Promise<ReplyResult> {
  const body = replySchema.parse(input);
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const key = actorKey(v.actor);
  if (r.status !== 'open' || r.claimed_by !== key) throw notHolder(r, key, now.getTime());
  const contactId = toInt(r.contact_id);
  const contact = await knex('contacts').where('id', contactId).first('status', 'stopped_at', 'language');
  if (contact.status === 'blocked') throw new HttpError(409, 'contact_blocked', 'This person is blocked: nothing is sent to them');
  const stoppedAt = toDateOrNull(contact.stopped_at);
  if (contact.status === 'stopped' && (!stoppedAt || toDate(r.last_message_at).getTime() < stoppedAt.getTime())) {
    throw new HttpError(409, 'contact_stopped', 'This person said STOP and has not written since: they cannot be messaged');
  }
  const addr = await replyAddress(knex, contactId, r.last_address_id === null || r.last_address_id === undefined ? null : toInt(r.last_address_id));
  if (!addr) throw new HttpError(409, 'no_address', 'This person has no number we may use (removed, or opted out with the provider)');
  const win = windowOf(addr, now.getTime());

  let content: OutboundContent;
  let language: string;
  let keyMessage: { id: number; versionId: number } | null = null;
  if (body.text !== undefined) {
    if (win.applies && !win.open) {
      throw new HttpError(
        409,
        'window_closed',
        `The WhatsApp 24-hour window ${win.until ? `closed at ${win.until.toISOString()}` : 'is not open (the person has not written on WhatsApp)'}: free text cannot be sent until they write again. Reply with an approved key message that has a WhatsApp template.`,
        { text: 'outside the WhatsApp 24-hour window only an approved key message with a WhatsApp template can be sent', windowClosedAt: win.until?.toISOString() ?? null },
      );
    }
    if (addr.medium === 'sms' && [...body.text].length > SMS_MAX) throw new HttpError(400, 'validation_failed', 'The reply is too long for SMS', { text: `must be at most ${SMS_MAX} characters by SMS` });
    content = { type: 'text', text: body.text };
    language = contact.language ?? config.DEFAULT_LANGUAGE;
  } else {
    const { message, version } = await usableVersion(knex, body.keyMessageId!);
    const picked = pickVariant(version, contact.language ?? null, config.DEFAULT_LANGUAGE);
    if (win.applies && !win.open && !picked.variant.template) {
      throw new HttpError(409, 'no_template', `Key message "${message.key}" has no approved WhatsApp template in ${picked.language}: outside the 24-hour window WhatsApp delivers only templates`, {
        keyMessageId: 'choose a key message with a WhatsApp template',
      });
    }
    const data = (await loadContactData(knex, [contactId])).get(contactId) ?? { name: null, language: null, fields: {} };
    content = renderContent({ version, language: picked.language, contact: data, programme: config.PROGRAMME_NAME, policy: addr.medium === 'sms' ? 'sms_only' : 'whatsapp_only', windowOpen: win.open });
    language = picked.language;
    keyMessage = { id: message.id, versionId: version.id };
  }

  const result = await knex.transaction(async (trx) => {
    const held = await trx('inbox_conversations').where({ id, status: 'open', claimed_by: key }).update({ claimed_at: now, updated_at: now });
    if (held === 0) throw notHolder((await trx('inbox_conversations').where('id', id).first()) ?? { status: 'closed' }, key, now.getTime());
    const outboxId = await enqueue(trx, { contactId, purpose: 'reply', content, language, channel: addr.medium, addressId: addr.id });
    const [row] = await trx('inbox_replies')
      .insert({
        conversation_id: id,
        contact_id: contactId,
        outbox_id: outboxId,
        kind: keyMessage ? 'key_message' : 'text',
        key_message_id: keyMessage?.id ?? null,
        key_message_version_id: keyMessage?.versionId ?? null,
        as_template: content.type === 'template',
        medium: addr.medium,
        actor: key,
        staff_user_id: v.actor.type === 'staff' ? v.actor.id : null,
        actor_label: v.actor.label.slice(0, 254),
        created_at: now,
      })
      .returning('id');
    return { outboxId, replyId: toInt(typeof row === 'object' ? (row as { id: unknown }).id : row) };
  });
  const out: ReplyResult = { ...result, kind: keyMessage ? 'key_message' : 'text', asTemplate: content.type === 'template', medium: addr.medium, language };
  await audit(db, v.actor, {
    action: 'inbox.reply',
    entityType: 'inbox_conversation',
    entityId: id,
    detail: { contactId, replyId: out.replyId, outboxId: out.outboxId, kind: out.kind, asTemplate: out.asTemplate, medium: out.medium, ...(keyMessage ? { keyMessageId: keyMessage.id } : {}) },
  });
  return out;
}

// ------------------------------------------------------------------------------------ topic, rumour, close

/** Topics to tag a conversation with: the key-message bank's, so figures by topic line up. */
export async function topicChoices(knex: Knex): Promise<string[]> {
  const used = (await knex('key_messages').whereNull('archived_at').distinct('topic').pluck('topic')).map(String);
  return [...new Set([...TOPICS, ...used])].filter((t) => t.length <= 40).sort();
}

export async function tagConversation(db: Database, v: Viewer, id: number, topic: string | null, now = new Date()): Promise<void> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const value = topic === null ? null : topic.trim().toLowerCase() || null;
  if (value !== null && !(await topicChoices(knex)).includes(value)) {
    throw new HttpError(400, 'validation_failed', 'The topic is not valid', { topic: `choose one of: ${(await topicChoices(knex)).join(', ')}` });
  }
  await knex('inbox_conversations').where('id', id).update({ topic: value, updated_at: now });
  await audit(db, v.actor, { action: 'inbox.tag', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(r.contact_id), topic: value } });
}

export async function setRumour(db: Database, v: Viewer, id: number, rumour: boolean, now = new Date()): Promise<void> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  await knex('inbox_conversations').where('id', id).update({ rumour, updated_at: now });
  await audit(db, v.actor, { action: 'inbox.rumour', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(r.contact_id), rumour } });
}

/**
 * Closes (resolves) an open conversation and ends any claim. Another operator's live claim stops it;
 * a stale one does not. A new unhandled message from the person reopens it.
 */
export async function closeConversation(db: Database, v: Viewer, id: number, now = new Date()): Promise<void> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const key = actorKey(v.actor);
  const n = await knex('inbox_conversations')
    .where({ id, status: 'open' })
    .where((w) => w.whereNull('claimed_by').orWhere('claimed_by', key).orWhere('claimed_at', '<', new Date(now.getTime() - CLAIM_MS)))
    .update({ status: 'closed', closed_at: now, closed_by_label: v.actor.label.slice(0, 254), claimed_by: null, claimed_by_user_id: null, claimed_by_label: null, claimed_at: null, updated_at: now });
  if (n === 0) {
    const again = await findRow(knex, v, id);
    if (again.status !== 'open') throw new HttpError(409, 'conversation_closed', 'This conversation is already closed');
    throw claimedElsewhere(again, now.getTime());
  }
  await audit(db, v.actor, { action: 'inbox.close', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(r.contact_id) } });
}

/** Opens a closed conversation again by hand (unclaimed). */
export async function reopenConversation(db: Database, v: Viewer, id: number, now = new Date()): Promise<void> {
  const { knex } = db;
  const r = await findRow(knex, v, id);
  const n = await knex('inbox_conversations').where({ id, status: 'closed' }).update({ status: 'open', opened_at: now, closed_at: null, closed_by_label: null, has_error: false, updated_at: now });
  if (n === 0) throw new HttpError(409, 'conversation_open', 'This conversation is already open');
  await audit(db, v.actor, { action: 'inbox.reopen', entityType: 'inbox_conversation', entityId: id, detail: { contactId: toInt(r.contact_id) } });
}

// ------------------------------------------------------------------------------------ FAQ from an answer

export const faqFromReplySchema = z.object({
  replyId: z.coerce.number().int().positive(),
  title: z.string().trim().min(1, { message: 'give the key message a title' }).max(200),
  key: messageKey.optional(),
  topic: z.string().trim().optional(),
  /** The answer as the key message will say it (default: the reply as sent). */
  text: z.string().trim().min(1).max(4096).optional(),
  keywords: z.array(z.string().trim().min(1).max(60)).min(1, { message: 'give at least one keyword' }).max(20),
  /** Put the draft up for review at once. */
  submit: z.boolean().default(false),
});
export type FaqFromReplyInput = z.input<typeof faqFromReplySchema>;

export interface FaqDraft {
  replyId: number;
  language: string;
  text: string | null;
  title: string;
  key: string;
  topic: string;
  /** Words of the person's question, for the operator to edit. */
  keywords: string[];
}

async function replyRow(knex: Knex, conversationId: number, replyId: number): Promise<Record<string, unknown>> {
  const r = await knex('inbox_replies as r').leftJoin('outbox as o', 'o.id', 'r.outbox_id').where({ 'r.id': replyId, 'r.conversation_id': conversationId }).first('r.*', 'o.content', 'o.language');
  if (!r) throw notFound('There is no such reply in this conversation');
  return r as Record<string, unknown>;
}

/** Words that say little about what a question is about (greetings, question words), in the line's languages. */
const FILLER = new Set([
  'HOLA', 'BUENAS', 'BUENOS', 'GRACIAS', 'FAVOR', 'DONDE', 'CUANDO', 'COMO', 'CUANTO', 'CUANTOS', 'CUANTAS', 'PORQUE', 'QUIERO', 'QUISIERA', 'PUEDO', 'PUEDE',
  'TENGO', 'TIENE', 'SABER', 'ESTA', 'ESTE', 'ESTO', 'PARA', 'SOBRE', 'HELLO', 'THANKS', 'THANK', 'PLEASE', 'WHERE', 'WHEN', 'WHAT', 'WHICH', 'WANT', 'HAVE',
  'WOULD', 'COULD', 'KNOW', 'ABOUT', 'THIS', 'THAT', 'OLA', 'OBRIGADO', 'OBRIGADA', 'ONDE', 'QUANDO', 'BONJOUR', 'MERCI', 'QUAND',
]);

/** Candidate keywords: the longest distinct words of the question that are neither reserved words nor filler. */
export function keywordsFrom(question: string | null, max = 3): string[] {
  const reserved = reservedWords();
  const words = [...new Set(normaliseKeyword(question).split(' '))].filter((w) => [...w].length >= 4 && !/^\d+$/.test(w) && !reserved.has(w) && !FILLER.has(w));
  return words.sort((a, b) => [...b].length - [...a].length).slice(0, max);
}

function replyLanguage(r: Record<string, unknown>, fallback: string): string {
  return (r.language as string | null) || fallback;
}

/** What the "turn into FAQ" form starts from: the answer's text and language, and words of the question it answered. */
export async function faqDraft(db: Database, config: Pick<Config, 'DEFAULT_LANGUAGE'>, v: Viewer, id: number, replyId: number): Promise<FaqDraft> {
  const { knex } = db;
  const conv = await findRow(knex, v, id);
  const r = await replyRow(knex, id, replyId);
  const text = textOf(parseContent(r.content));
  const question = await knex('inbound_messages')
    .where('contact_id', toInt(conv.contact_id))
    .whereIn('route', UNHANDLED_ROUTES)
    .where('received_at', '<=', toDate(r.created_at))
    .whereNotNull('text')
    .orderBy('id', 'desc')
    .first('text');
  return {
    replyId,
    language: replyLanguage(r, (conv.contact_language as string | null) ?? config.DEFAULT_LANGUAGE),
    text,
    title: preview(text)?.slice(0, 60) ?? '',
    key: `inbox-answer-${replyId}`,
    topic: (conv.topic as string | null) ?? 'general',
    keywords: keywordsFrom((question?.text as string | null) ?? null),
  };
}

/**
 * Turns a free-text answer into a key-message draft (in the answer's language) and an FAQ entry with
 * the given keywords. The entry answers nobody until a second staff user approves the key message
 * (the bank's two-person rule, src/broadcasts/messages.ts). Needs messages.write.
 */
export async function faqFromReply(db: Database, config: Pick<Config, 'DEFAULT_LANGUAGE'>, v: Viewer, id: number, input: FaqFromReplyInput): Promise<{ message: KeyMessage; faq: FaqEntry }> {
  const body = faqFromReplySchema.parse(input);
  if (!v.permissions.includes('messages.write')) throw new HttpError(403, 'forbidden', 'Writing key messages needs the messages.write permission');
  const { knex } = db;
  const conv = await findRow(knex, v, id);
  const r = await replyRow(knex, id, body.replyId);
  if (r.kind !== 'text') throw new HttpError(409, 'not_free_text', 'This reply was a key message already: only a free-text answer can become a new FAQ entry');
  if (r.faq_message_id !== null && r.faq_message_id !== undefined) throw new HttpError(409, 'already_faq', `This answer already became key message ${toInt(r.faq_message_id)}`);
  const text = body.text ?? textOf(parseContent(r.content));
  if (!text) throw new HttpError(409, 'text_erased', 'The text of this reply was erased on the retention schedule: write the answer in the form');
  const language = replyLanguage(r, (conv.contact_language as string | null) ?? config.DEFAULT_LANGUAGE);
  const keywords = { [language]: body.keywords };
  await cleanKeywords(knex, keywords); // refuse reserved or taken keywords before anything is written
  const message = await createMessage(db, v.actor, {
    key: body.key ?? `inbox-answer-${body.replyId}`,
    title: body.title,
    topic: body.topic || (conv.topic as string | null) || 'general',
    variants: { [language]: { text } },
  });
  const faq = await createFaq(db, v.actor, { messageId: message.id, keywords, active: true });
  await knex('inbox_replies').where('id', body.replyId).update({ faq_message_id: message.id });
  const final = body.submit ? await submitMessage(db, v.actor, message.id) : message;
  await audit(db, v.actor, { action: 'inbox.faq', entityType: 'inbox_conversation', entityId: id, detail: { replyId: body.replyId, keyMessageId: message.id, faqId: faq.id, submitted: body.submit } });
  return { message: final, faq };
}
