/**
 * The phone simulator: a staff member writes as a test contact (a test number they pick) on a
 * WhatsApp-like or an SMS-like phone. What they type is a real inbound message on the simulator
 * channel — stored and routed like any webhook's (`storeInbound` + `routeStored` with the router's
 * steps), so list joins, surveys, complaint intake, the FAQ and the inbox all answer as they would on a
 * provider. The answers are real outbox rows; the dispatcher sends them through the simulator channel
 * (an address whose last message came through the simulator is answered there), and the simulated
 * phone shows them — buttons and list rows as buttons on WhatsApp, the text with its segment count on
 * SMS — and reports them delivered (and, on WhatsApp, read) once shown.
 *
 * The simulator never writes as a real person: a number that belongs to a contact who is not a test
 * contact is refused. Test contacts are marked (simulator_contacts) before their first message is
 * stored, and reports leave them out.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { channelsFor } from '../channels/index.js';
import { measureSms, renderSms } from '../channels/sms.js';
import type { SimulatedMessage } from '../channels/simulator.js';
import type { StatusUpdate } from '../channels/types.js';
import { findOrCreateContact, normalisePhone } from '../contacts/addresses.js';
import { routeStored, storeInbound } from '../messaging/inbound.js';
import { readOutboxRow } from '../messaging/outbox.js';
import { applyStatuses } from '../messaging/status.js';
import { ROUTER_STEPS } from '../messaging/steps.js';
import type { Medium, OutboundContent } from '../messaging/types.js';
import { audit, type Actor } from '../staff/audit.js';
import { isTestContact, markTestContact } from './contacts.js';

export interface SimulatorServices {
  config: Config;
  db: Database;
  log: Logger;
}

export const MEDIA = ['whatsapp', 'sms'] as const;

export const sendSchema = z
  .object({
    number: z.string().trim().min(1, { message: 'give the test number to write from' }).max(40),
    medium: z.enum(MEDIA, { message: 'must be whatsapp or sms' }),
    text: z.string().max(4096, { message: 'must be at most 4,096 characters' }).optional(),
    /** A tapped WhatsApp reply button or list row: its id (the text is its title). */
    payload: z.string().max(256).optional(),
    /** 'button' or 'list': what the payload came from. */
    tap: z.enum(['button', 'list']).optional(),
  })
  .refine((v) => (v.text ?? '').trim() !== '' || (v.payload ?? '') !== '', { message: 'write a message or tap a button', path: ['text'] })
  .refine((v) => !v.payload || v.medium === 'whatsapp', { message: 'buttons exist on WhatsApp only; on SMS, type the option', path: ['payload'] });
export type SendInput = z.input<typeof sendSchema>;

const invalid = (details: Record<string, string>) => new HttpError(400, 'validation_failed', 'The message is not valid', details);

/** The test number in E.164, or a 400 naming the field. */
export function testNumber(raw: string, config: Pick<Config, 'DEFAULT_COUNTRY'>): string {
  const r = normalisePhone(raw, config.DEFAULT_COUNTRY);
  if (!r.ok) throw invalid({ number: r.reason });
  return r.e164;
}

/** Refuses a number that a real (not test) contact has, on any medium. */
async function checkNotReal(db: Database, e164: string): Promise<void> {
  const owners = (await db.knex('contact_addresses').whereIn('channel', ['whatsapp', 'sms']).where('address', e164).distinct('contact_id').pluck('contact_id')).map(toInt);
  for (const id of owners) {
    if (!(await isTestContact(db.knex, id))) {
      throw new HttpError(409, 'not_a_test_number', 'This number belongs to a contact who is not a test contact', { number: 'belongs to a real contact; choose another test number, such as +51 999 000 001' });
    }
  }
}

export interface SentResult {
  contactId: number;
  messageId: number;
  /** The router step that handled it (list join, survey, complaint intake, faq, inbox…). */
  route: string;
}

/** The test contact sends a message (or taps a button) from the simulated phone. */
export async function simulatorSend(services: SimulatorServices, actor: Actor, input: SendInput): Promise<SentResult> {
  const parsed = sendSchema.safeParse(input);
  if (!parsed.success) throw invalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || 'text', i.message])));
  const v = parsed.data;
  const e164 = testNumber(v.number, services.config);
  const { db } = services;
  await checkNotReal(db, e164);

  // The contact first, marked as a test contact before anything routes its message.
  const found = await findOrCreateContact(db.knex, { medium: v.medium, kind: 'phone', address: e164 });
  await markTestContact(db.knex, found.contactId, actor.type === 'staff' ? actor.id : (actor.userId ?? null));

  const channel = channelsFor(services.config).simulator[v.medium];
  const text = (v.text ?? '').trim() || null;
  const message = channel.inbound({
    from: e164,
    text,
    ...(v.payload ? (v.tap === 'list' ? { listRowId: v.payload } : { buttonId: v.payload }) : {}),
  });
  const stored = await storeInbound(services, [message]);
  const messageId = stored.stored[0];
  if (messageId === undefined) throw new HttpError(409, 'duplicate', 'This message was already received');
  // Routed here, at once (the inbound worker may have routed it first: then its route is read back).
  const route = (await routeStored(services, ROUTER_STEPS, messageId)) ?? String((await db.knex('inbound_messages').where('id', messageId).first('route'))?.route ?? 'routing');
  await audit(db, actor, { action: 'simulator.message', entityType: 'contact', entityId: found.contactId, detail: { medium: v.medium, route } });
  return { contactId: found.contactId, messageId, route };
}

export interface PhoneMessage {
  direction: 'in' | 'out';
  at: string;
  medium: Medium;
  /** What the phone shows: the WhatsApp text, or the whole SMS as rendered. */
  text: string;
  /** WhatsApp reply buttons, or list rows (with the list's button label). */
  buttons?: { id: string; title: string }[];
  list?: { button: string; rows: { id: string; title: string; description?: string }[] };
  /** WhatsApp media attached to a text (shown as a note). */
  media?: string;
  /** SMS: segments and encoding of the text. */
  segments?: number;
  encoding?: string;
  characters?: number;
  /** Outbound: queued, sending, sent, delivered, read, failed, skipped, cancelled. */
  status?: string;
  error?: string | null;
  /** Inbound: the router step that handled it; a tapped button's id. */
  route?: string | null;
  payload?: string | null;
}

export interface Conversation {
  number: string;
  medium: Medium;
  contactId: number | null;
  messages: PhoneMessage[];
  /** Outbound messages not sent yet (the page refreshes while there are some). */
  pending: number;
  /** A fingerprint of the conversation, so that a poller can tell whether it changed. */
  version: string;
}

const LIMIT = 100;

function phoneFace(medium: Medium, content: OutboundContent, language: string | null, sim?: SimulatedMessage): Pick<PhoneMessage, 'text' | 'buttons' | 'list' | 'media' | 'segments' | 'encoding' | 'characters'> {
  if (medium === 'sms') {
    const text = sim?.text ?? renderSms(content, language);
    const m = measureSms(text);
    return { text, segments: sim?.segments ?? m.segments, encoding: m.encoding, characters: m.characters };
  }
  if (content.type === 'buttons') return { text: content.text, buttons: content.buttons };
  if (content.type === 'list') return { text: content.text, list: { button: content.button, rows: content.rows } };
  if (content.type === 'text' && content.media) return { text: content.text, media: content.media.filename ?? content.media.kind };
  return { text: content.text };
}

/**
 * The conversation of a test number on a medium, oldest first (the last 100 messages each way).
 * Messages the dispatcher has sent through the simulator are reported delivered, and on WhatsApp
 * read, as the phone shows them.
 */
export async function conversation(services: SimulatorServices, rawNumber: string, medium: Medium, opts: { markRead?: boolean } = {}): Promise<Conversation> {
  const e164 = testNumber(rawNumber, services.config);
  const { knex } = services.db;
  const addr = await knex('contact_addresses').where({ channel: medium, address: e164 }).first('id', 'contact_id');
  const empty: Conversation = { number: e164, medium, contactId: null, messages: [], pending: 0, version: 'empty' };
  if (!addr) return empty;
  const contactId = toInt(addr.contact_id);
  if (!(await isTestContact(knex, contactId))) throw new HttpError(409, 'not_a_test_number', 'This number belongs to a contact who is not a test contact', { number: 'belongs to a real contact; choose another test number' });

  const inbound = (await knex('inbound_messages').where({ contact_id: contactId, channel: 'simulator', address_id: toInt(addr.id) }).orderBy('id', 'desc').limit(LIMIT).select('id', 'kind', 'text', 'payload', 'route', 'received_at')) as Record<string, unknown>[];
  const outRows = (await knex('outbox as o')
    .leftJoin('contact_addresses as a', 'a.id', 'o.address_id')
    .where('o.contact_id', contactId)
    .orderBy('o.id', 'desc')
    .limit(LIMIT)
    .select('o.*', 'a.channel as address_medium')) as Record<string, unknown>[];

  const store = channelsFor(services.config).simulator.store;
  const shown = new Map<string, SimulatedMessage>();
  for (const m of [...store.sent('whatsapp', e164), ...store.sent('sms', e164)]) shown.set(m.providerId, m);

  const messages: (PhoneMessage & { t: number; seq: number })[] = [];
  for (const r of inbound) {
    messages.push({ direction: 'in', at: toDate(r.received_at).toISOString(), t: toDate(r.received_at).getTime(), seq: toInt(r.id), medium, text: (r.text as string | null) ?? '', route: (r.route as string | null) ?? null, payload: (r.payload as string | null) ?? null });
  }
  let pending = 0;
  const reports: StatusUpdate[] = [];
  for (const r of outRows) {
    const row = readOutboxRow(r);
    // Messages for this test number: those sent on this medium, and those still waiting for their channel.
    const rowMedium: Medium | null = r.address_medium === 'whatsapp' || r.address_medium === 'sms' ? (r.address_medium as Medium) : row.channel === 'whatsapp' || row.channel === 'sms' ? (row.channel as Medium) : null;
    if (rowMedium !== null && rowMedium !== medium) continue;
    if (row.status === 'queued' || row.status === 'sending') pending++;
    const sim = row.providerId ? shown.get(row.providerId) : undefined;
    const content = sim?.content ?? row.content;
    const at = toDate(r.created_at);
    const face = content
      ? phoneFace(medium, content, row.language, sim)
      : { text: row.broadcastId ? `[broadcast ${row.broadcastId}: rendered when it is sent]` : '' };
    messages.push({ direction: 'out', at: at.toISOString(), t: at.getTime(), seq: row.id, medium, ...face, status: row.status, error: row.errorCode });
    if (opts.markRead && sim && row.channel === 'simulator' && (row.status === 'sent' || (medium === 'whatsapp' && row.status === 'delivered'))) {
      // The phone has it (SMS reports no more than that); WhatsApp's is on screen, so read.
      reports.push({ channel: 'simulator', providerId: sim.providerId, status: medium === 'whatsapp' ? 'read' : 'delivered', at: new Date() });
    }
  }
  if (reports.length) await applyStatuses(services.db, reports, { keepEarly: false });
  // Inbound before the replies it caused when they share a millisecond.
  messages.sort((a, b) => a.t - b.t || (a.direction === b.direction ? a.seq - b.seq : a.direction === 'in' ? -1 : 1));
  const list = messages.map(({ t: _t, seq: _s, ...m }) => m);
  const version = `${inbound[0]?.id ?? 0}.${outRows.map((r) => `${r.id}:${r.status}`).join(',')}`;
  return { number: e164, medium, contactId, messages: list, pending, version };
}
