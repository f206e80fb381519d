/**
 * The inbound pipeline after a webhook has verified and parsed a request:
 *   store (de-duplicated on channel + provider id) → contact by address → router.
 * `storeInbound` is all a webhook does before answering 200; routing happens afterwards
 * (`routePending`), so nothing slow runs inside the request, and a message stored before a
 * crash is routed after the restart.
 */
import { findOrCreateContacts } from '../contacts/addresses.js';
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { noteUnhandled } from './inbox.js';
import { routeMessage, type NamedStep } from './router.js';
import type { InboundContext, ParsedInbound, RouterServices } from './types.js';

export interface StoreResult {
  /** ids of newly stored messages, in the order given */
  stored: number[];
  /** messages already stored earlier (a provider retry or replay) */
  duplicates: number;
}

/**
 * Stores a batch of parsed messages in one transaction, de-duplicated on (channel, provider id),
 * each linked to its contact (found or created by address), and moves the addresses' last inbound
 * time (which opens WhatsApp's 24-hour window) and the contacts' last seen time forward — never
 * back, so a late replay of an old message does not shorten the window. Set-based: a batch of n
 * messages from known contacts costs a handful of queries, not several per message (the webhooks
 * group the messages of concurrent requests into one batch).
 */
export async function storeInbound(services: RouterServices, messages: readonly ParsedInbound[]): Promise<StoreResult> {
  const outcome = await storeInboundBatch(services.db.knex, messages);
  const result: StoreResult = { stored: [], duplicates: 0 };
  for (const id of outcome) {
    if (id === null) result.duplicates++;
    else result.stored.push(id);
  }
  return result;
}

/** NUL cannot be stored in PostgreSQL text; nobody means it. */
const clean = (s: string) => (s.includes('\u0000') ? s.replace(/\u0000/g, '') : s);
const CHUNK = 400;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Like storeInbound, with one outcome per message in the order given: the new id, or null for a duplicate. */
export async function storeInboundBatch(knex: Knex, messages: readonly ParsedInbound[]): Promise<(number | null)[]> {
  if (messages.length === 0) return [];
  return knex.transaction((trx) => storeInboundIn(trx, messages));
}

/** storeInboundBatch inside the caller's transaction (the webhooks also apply a group's statuses in it). */
export async function storeInboundIn(trx: Knex, messages: readonly ParsedInbound[]): Promise<(number | null)[]> {
  const outcome: (number | null)[] = messages.map(() => null);
  if (messages.length === 0) return outcome;
  const rows = messages.map((m) => ({ m, channel: m.channel, providerId: clean(m.providerId).slice(0, 200), address: clean(m.from) }));
  const key = (channel: string, providerId: string) => `${channel}\u0000${providerId}`;

  // 1. Replays within the batch: the first copy stands for the others. Replays of messages
  //    stored earlier are found by the insert itself (ON CONFLICT DO NOTHING), with no extra read.
  const firstOf = new Map<string, number>();
  rows.forEach((r, i) => {
    const k = key(r.channel, r.providerId);
    if (!firstOf.has(k)) firstOf.set(k, i);
  });
  const fresh = [...firstOf.values()];

  // 2. Contacts by address: a few queries for the whole batch, known senders or new.
  const addrKey = (medium: string, address: string) => `${medium}\u0000${address}`;
  const contactOf = await findOrCreateContacts(
    trx,
    fresh.map((i) => ({ medium: rows[i].m.medium, kind: rows[i].m.fromKind, address: rows[i].address })),
  );

  // 3. The messages themselves; a concurrent writer of the same id (another process) wins quietly.
  const inserted = new Map<string, number>();
  for (const part of chunks(fresh)) {
    const values = part.map((i) => {
      const r = rows[i];
      const c = contactOf.get(addrKey(r.m.medium, r.address))!;
      return {
        channel: r.channel,
        provider_id: r.providerId,
        contact_id: c.contactId,
        address_id: c.addressId,
        kind: r.m.kind,
        text: r.m.text === null || r.m.text === undefined ? null : clean(r.m.text),
        payload: r.m.payload === null || r.m.payload === undefined ? null : clean(r.m.payload).slice(0, 256),
        keep: false,
        received_at: r.m.receivedAt,
      };
    });
    const back: { id: unknown; channel: string; provider_id: string }[] = await trx('inbound_messages').insert(values).onConflict(['channel', 'provider_id']).ignore().returning(['id', 'channel', 'provider_id']);
    for (const b of back) inserted.set(key(String(b.channel), String(b.provider_id)), toInt(b.id));
  }

  // 4. Last inbound (per address) and last seen (per contact) move forward to the newest message,
  //    never back (a late replay of an old message does not shorten the window). One statement per
  //    table: the newest time is read from the messages just inserted (ids from the first of them
  //    on, through the contact_id index), whatever mix of times the batch holds.
  const addressIds = new Set<number>();
  const contactIds = new Set<number>();
  let firstId = Infinity;
  for (const i of fresh) {
    const r = rows[i];
    const id = inserted.get(key(r.channel, r.providerId));
    if (id === undefined) continue;
    outcome[i] = id;
    if (id < firstId) firstId = id;
    const c = contactOf.get(addrKey(r.m.medium, r.address))!;
    addressIds.add(c.addressId);
    contactIds.add(c.contactId);
  }
  if (addressIds.size === 0) return outcome;
  const newest = (owner: 'address' | 'contact') =>
    trx('inbound_messages as m')
      .max('m.received_at')
      .where('m.contact_id', trx.ref(owner === 'address' ? 'contact_addresses.contact_id' : 'contacts.id'))
      .where('m.id', '>=', firstId)
      .modify((q) => {
        if (owner === 'address') q.where('m.address_id', trx.ref('contact_addresses.id'));
      });
  for (const part of chunks([...addressIds])) {
    await trx('contact_addresses')
      .whereIn('id', part)
      .where((w) => w.whereNull('last_inbound_at').orWhere('last_inbound_at', '<', newest('address')))
      .update({ last_inbound_at: newest('address') });
  }
  const now = new Date();
  for (const part of chunks([...contactIds])) {
    await trx('contacts')
      .whereIn('id', part)
      .where((w) => w.whereNull('last_seen_at').orWhere('last_seen_at', '<', newest('contact')))
      .update({ last_seen_at: newest('contact'), updated_at: now });
  }
  return outcome;
}

/** Routes one stored message (if nobody has yet). Returns the route, or null if it was already handled. */
export async function routeStored(services: RouterServices, steps: readonly NamedStep[], id: number): Promise<string | null> {
  const { knex } = services.db;
  // Claim: only one process routes a message.
  const claimed = await knex('inbound_messages').where('id', id).whereNull('handled_at').update({ handled_at: new Date(), route: 'routing' });
  if (!claimed) return null;
  const row = await knex('inbound_messages as m')
    .join('contact_addresses as a', 'a.id', 'm.address_id')
    .join('contacts as c', 'c.id', 'm.contact_id')
    .where('m.id', id)
    .first('m.*', 'a.channel as medium', 'a.address', 'c.status', 'c.language', 'c.created_at as contact_created_at');
  if (!row) return null;
  const ctx: InboundContext = {
    services,
    message: {
      id,
      channel: row.channel,
      medium: row.medium,
      kind: row.kind,
      text: row.text ?? null,
      payload: row.payload ?? null,
      receivedAt: toDate(row.received_at),
    },
    contact: {
      id: toInt(row.contact_id),
      language: row.language ?? null,
      status: row.status,
      isNew: Math.abs(toDate(row.contact_created_at).getTime() - toDate(row.received_at).getTime()) < 60_000,
    },
    address: { id: toInt(row.address_id), medium: row.medium, address: row.address },
  };
  let route: string;
  try {
    route = await routeMessage(steps, ctx);
  } catch (err) {
    // Leave it for a retry rather than lose it.
    await knex('inbound_messages').where('id', id).update({ handled_at: null, route: null });
    throw err;
  }
  // The staff inbox's conversation opens (or reopens) first: should the process die before the route
  // is recorded, the message is routed again and the (idempotent) opening repeated.
  if (route === 'inbox') await noteUnhandled(knex, { messageId: id, contactId: ctx.contact.id, addressId: ctx.address.id, receivedAt: ctx.message.receivedAt, error: false });
  await knex('inbound_messages').where('id', id).update({ route });
  return route;
}

/** Routes every stored message that nobody has handled yet, oldest first. Returns how many. */
export async function routePending(services: RouterServices, steps: readonly NamedStep[], limit = 500): Promise<number> {
  const ids = await services.db.knex('inbound_messages').whereNull('handled_at').orderBy('id').limit(limit).pluck('id');
  let n = 0;
  for (const id of ids) if ((await routeStored(services, steps, toInt(id))) !== null) n++;
  return n;
}

/** Store then route at once: for the simulator and tests, where there is no provider waiting. */
export async function receive(services: RouterServices, steps: readonly NamedStep[], messages: readonly ParsedInbound[]): Promise<{ stored: number[]; routes: string[]; duplicates: number }> {
  const r = await storeInbound(services, messages);
  const routes: string[] = [];
  for (const id of r.stored) routes.push((await routeStored(services, steps, id)) ?? 'already-handled');
  return { ...r, routes };
}
