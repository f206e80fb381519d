/**
 * Keyed hashes of addresses (HMAC-SHA256), and the erasure tombstones built from them.
 *
 * When a contact is erased, each of its addresses leaves only `HMAC(key, address)` in
 * `erasure_tombstones`, so that a later import of the same number can be recognised and refused
 * unless new consent evidence is given — without keeping the number.
 *
 * The key: `PSEUDONYM_KEY` (required in production, kept outside the database, never changed;
 * `configOrExit` registers it for the whole process). Phone numbers are a small space, so a hash
 * whose key sits next to it in a database dump could be reversed by trying every number: that is
 * why production needs the setting. A development install without it gets a random key generated
 * once and kept in `instance_secrets`, so that tombstones still match across restarts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import type { Knex } from '../db/orm.js';

let processKey: string | undefined;
let requireConfigured = false;

/** Registers the configured key for this process (called at start-up, by the CLI and by job workers). */
export function configurePseudonyms(config: Pick<Config, 'PSEUDONYM_KEY' | 'NODE_ENV'>): void {
  processKey = config.PSEUDONYM_KEY;
  requireConfigured = config.NODE_ENV === 'production';
}

const SECRET_NAME = 'pseudonym_key';

async function databaseKey(knex: Knex): Promise<string> {
  const found = await knex('instance_secrets').where('name', SECRET_NAME).first('value');
  if (found) return String(found.value);
  await knex('instance_secrets')
    .insert({ name: SECRET_NAME, value: randomBytes(32).toString('hex'), created_at: new Date() })
    .onConflict('name')
    .ignore();
  const row = await knex('instance_secrets').where('name', SECRET_NAME).first('value');
  return String(row.value);
}

async function key(knex: Knex): Promise<string> {
  if (processKey) return processKey;
  if (requireConfigured) throw new Error('PSEUDONYM_KEY is not configured for this process');
  return databaseKey(knex);
}

/** The keyed hash of one address (E.164 number or WhatsApp user id), 64 hex characters. */
export async function addressHash(knex: Knex, address: string): Promise<string> {
  return createHmac('sha256', await key(knex)).update(address.trim()).digest('hex');
}

/** Records tombstones for erased addresses (pass the transaction that erases them). */
export async function addTombstones(knex: Knex, addresses: readonly string[], at = new Date()): Promise<void> {
  for (const a of addresses) {
    const hash = await addressHash(knex, a);
    await knex('erasure_tombstones').insert({ address_hash: hash, erased_at: at }).onConflict('address_hash').merge({ erased_at: at });
  }
}

/**
 * True when this address (normalised: E.164 or a WhatsApp user id) belonged to an erased contact.
 * An import must then refuse it unless the person gave new consent evidence.
 */
export async function isTombstoned(knex: Knex, address: string): Promise<boolean> {
  const row = await knex('erasure_tombstones').where('address_hash', await addressHash(knex, address)).first('address_hash');
  return Boolean(row);
}

/** Lifts the tombstone of an address whose person has given fresh consent themselves (e.g. JOIN → YES). */
export async function clearTombstone(knex: Knex, address: string): Promise<boolean> {
  const n = await knex('erasure_tombstones').where('address_hash', await addressHash(knex, address)).delete();
  return n > 0;
}
