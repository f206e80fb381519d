/**
 * Test contacts: the contacts a staff member writes as from the console's phone simulator. They are
 * real contacts (their messages go through the real router, surveys and complaint intake), marked in
 * simulator_contacts so that reports can leave them out and so that the simulator never writes as a
 * real person.
 */
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';

/** Sub-query of the ids of test contacts (for `excludeContacts` in the domains' counting functions). */
export function simulatorContactIds(knex: Knex): Knex.QueryBuilder {
  return knex('simulator_contacts').select('contact_id');
}

export async function isTestContact(knex: Knex, contactId: number): Promise<boolean> {
  return Boolean(await knex('simulator_contacts').where('contact_id', contactId).first('contact_id'));
}

export async function markTestContact(knex: Knex, contactId: number, staffUserId: number | null, at = new Date()): Promise<void> {
  await knex('simulator_contacts').insert({ contact_id: contactId, created_by_id: staffUserId, created_at: at }).onConflict('contact_id').ignore();
}

export async function testContactCount(knex: Knex): Promise<number> {
  const [r] = await knex('simulator_contacts').count({ n: '*' });
  return toInt(r.n);
}

export interface TestContact {
  contactId: number;
  /** The test numbers (or WhatsApp ids) the contact has, by medium. */
  addresses: { medium: string; address: string }[];
  createdAt: Date;
  lastSeenAt: Date | null;
}

/** The test contacts, most recently active first. */
export async function listTestContacts(knex: Knex, opts: { limit?: number } = {}): Promise<TestContact[]> {
  const rows = (await knex('simulator_contacts as s')
    .join('contacts as c', 'c.id', 's.contact_id')
    .whereNull('c.erased_at')
    .orderByRaw('coalesce(c.last_seen_at, s.created_at) desc')
    .limit(opts.limit ?? 20)
    .select('s.contact_id', 's.created_at', 'c.last_seen_at')) as Record<string, unknown>[];
  if (!rows.length) return [];
  const ids = rows.map((r) => toInt(r.contact_id));
  const addresses = (await knex('contact_addresses').whereIn('contact_id', ids).orderBy('id').select('contact_id', 'channel', 'address')) as Record<string, unknown>[];
  return rows.map((r) => ({
    contactId: toInt(r.contact_id),
    addresses: addresses.filter((a) => toInt(a.contact_id) === toInt(r.contact_id)).map((a) => ({ medium: String(a.channel), address: String(a.address) })),
    createdAt: toDate(r.created_at),
    lastSeenAt: r.last_seen_at === null || r.last_seen_at === undefined ? null : toDate(r.last_seen_at),
  }));
}
