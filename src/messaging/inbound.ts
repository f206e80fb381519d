/**
 * The inbound pipeline after a webhook has verified and parsed a request:
 *   store (de-duplicated on channel + provider id) → contact by address → router.
 * `storeInbound` is all a webhook does before answering 200; routing happens afterwards
 * (`routePending`), so nothing slow runs inside the request, and a message stored before a
 * crash is routed after the restart.
 */
import { findOrCreateContact } from '../contacts/addresses.js';
import { toDate, toInt } from '../db/values.js';
import { routeMessage, type NamedStep } from './router.js';
import type { InboundContext, ParsedInbound, RouterServices } from './types.js';

export interface StoreResult {
  /** ids of newly stored messages, in the order given */
  stored: number[];
  /** messages already stored earlier (a provider retry or replay) */
  duplicates: number;
}

export async function storeInbound(services: RouterServices, messages: readonly ParsedInbound[]): Promise<StoreResult> {
  const { knex } = services.db;
  const result: StoreResult = { stored: [], duplicates: 0 };
  for (const m of messages) {
    const seen = await knex('inbound_messages').where({ channel: m.channel, provider_id: m.providerId }).first('id');
    if (seen) {
      result.duplicates++;
      continue;
    }
    const found = await findOrCreateContact(knex, { medium: m.medium, kind: m.fromKind, address: m.from });
    const inserted = await knex('inbound_messages')
      .insert({
        channel: m.channel,
        provider_id: m.providerId,
        contact_id: found.contactId,
        address_id: found.addressId,
        kind: m.kind,
        text: m.text,
        payload: m.payload ?? null,
        keep: false,
        received_at: m.receivedAt,
      })
      .onConflict(['channel', 'provider_id'])
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      result.duplicates++;
      continue;
    }
    const id = toInt(typeof inserted[0] === 'object' ? (inserted[0] as { id: unknown }).id : inserted[0]);
    result.stored.push(id);
    const now = new Date();
    await knex('contact_addresses').where('id', found.addressId).update({ last_inbound_at: m.receivedAt });
    await knex('contacts').where('id', found.contactId).update({ last_seen_at: m.receivedAt, updated_at: now });
  }
  return result;
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
