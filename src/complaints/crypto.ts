/**
 * Sealing sensitive text at rest: the narrative, resolution and notes of sensitive complaints, the
 * notes of restricted referrals, psychosocial triage notes and intakes in progress.
 *
 * AES-256-GCM (node:crypto) with a random 96-bit IV per value. A sealed value is one string:
 *   v1.<key id>.<iv>.<tag>.<ciphertext>      (base64url parts; key id = first 8 hex of sha256(key))
 * The additional authenticated data names the record and field ("complaint:K7QX3M:narrative"), so a
 * sealed value copied into another record or column does not open.
 *
 * The key:
 *  - `COMPLAINTS_ENCRYPTION_KEY` (32 bytes, base64) — required when NODE_ENV=production (the
 *    configuration refuses to start without it), registered for the process by `configureComplaints`
 *    (boot.ts), kept outside the database, never changed without re-sealing;
 *  - otherwise (development, tests) a development key generated once with crypto.randomBytes and kept
 *    in data/complaints-dev.key (mode 0600) next to the default database, so that a development
 *    install's cases still open after a restart. That file sits next to the data it protects: it keeps
 *    narratives out of a copied database file, and nothing more. The first use in a process says so
 *    on stderr, and the complaints pages show a warning to focal points.
 * A value sealed with another key fails with an error naming both key ids, never with garbage.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config.js';
import { ROOT } from '../paths.js';

export const DEV_KEY_FILE = join(ROOT, 'data', 'complaints-dev.key');

let configured: Buffer | undefined;
let production = false;
let devKey: Buffer | undefined;
let warned = false;
/** Set once the process registered its configuration (server, CLI, job worker): only then is the development key announced. */
let announced = false;

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

/** Registers the configured key for this process (boot.ts: the server, the CLI and every job worker). */
export function configureComplaintsKey(config: Pick<Config, 'COMPLAINTS_ENCRYPTION_KEY' | 'NODE_ENV'>): void {
  configured = config.COMPLAINTS_ENCRYPTION_KEY ? Buffer.from(config.COMPLAINTS_ENCRYPTION_KEY, 'base64') : undefined;
  production = config.NODE_ENV === 'production';
  announced = config.NODE_ENV !== 'test';
  if (configured && configured.length !== 32) throw new SealError('COMPLAINTS_ENCRYPTION_KEY must be 32 bytes in base64');
}

/** True when the key in use is the development key file (the console warns focal points). */
export function usingDevelopmentKey(): boolean {
  return !configured;
}

/** A new random key, base64 (for `ayni complaints key`). */
export function generateKey(): string {
  return randomBytes(32).toString('base64');
}

function loadDevKey(): Buffer {
  if (devKey) return devKey;
  if (!existsSync(DEV_KEY_FILE)) {
    mkdirSync(dirname(DEV_KEY_FILE), { recursive: true });
    // Written whole under a temporary name, then linked into place: another process either sees no
    // file or the complete key, and the first link wins.
    const tmp = `${DEV_KEY_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    try {
      linkSync(tmp, DEV_KEY_FILE);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      unlinkSync(tmp);
    }
  }
  try {
    chmodSync(DEV_KEY_FILE, 0o600);
  } catch {
    // read-only file system: reading is enough
  }
  const key = Buffer.from(readFileSync(DEV_KEY_FILE, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new SealError(`${DEV_KEY_FILE} does not hold a 32-byte base64 key; remove it to generate a new one (cases sealed with it will no longer open)`);
  if (!warned && announced) {
    warned = true;
    process.stderr.write(
      `ayni: WARNING: COMPLAINTS_ENCRYPTION_KEY is not set. Sensitive complaints and mental-health notes are sealed with a DEVELOPMENT key kept in ${DEV_KEY_FILE}, next to the data. ` +
        'Do not take real cases like this: set COMPLAINTS_ENCRYPTION_KEY (`ayni complaints key` prints a new one).\n',
    );
  }
  devKey = key;
  return key;
}

function key(): Buffer {
  if (configured) return configured;
  if (production) throw new SealError('COMPLAINTS_ENCRYPTION_KEY is not configured for this process');
  return loadDevKey();
}

const keyId = (k: Buffer) => createHash('sha256').update(k).digest('hex').slice(0, 8);

/** Seals a text; `context` names where it belongs ("complaint:CODE:narrative"). */
export function seal(text: string, context: string): string {
  const k = key();
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', k, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return ['v1', keyId(k), iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

/** Opens a sealed text. Throws SealError when it was sealed with another key, for another place, or was altered. */
export function unseal(sealed: string, context: string): string {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== 'v1') throw new SealError('not a sealed value');
  const k = key();
  if (parts[1] !== keyId(k)) throw new SealError(`sealed with key ${parts[1]}, but the configured key is ${keyId(k)}`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', k, Buffer.from(parts[2], 'base64url'));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(Buffer.from(parts[3], 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(parts[4], 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError('the sealed value does not open: altered, or sealed for another record');
  }
}

export const sealOrNull = (text: string | null | undefined, context: string): string | null => (text === null || text === undefined ? null : seal(text, context));
export const unsealOrNull = (text: string | null | undefined, context: string): string | null => (text === null || text === undefined ? null : unseal(text, context));

/**
 * Opens a sealed text for display. One that does not open (sealed with another key than the one
 * configured) says why instead of failing the whole page: the rest of the record is still needed.
 */
export function openForDisplay(text: unknown, context: string): string | null {
  try {
    return unsealOrNull(text as string | null, context);
  } catch (e) {
    if (e instanceof SealError) return `[sealed text that cannot be opened: ${e.message}]`;
    throw e;
  }
}

/**
 * An opaque, stable reference for the audit log of a restricted record: the log says that someone
 * read "a restricted case s:3fa9…" without naming which, so the audit page cannot reveal it to an
 * admin; the case page shows its reference to focal points, who can match the entries.
 */
export function restrictedRef(kind: string, id: string): string {
  return 's:' + createHmac('sha256', key()).update(`audit|${kind}|${id}`).digest('hex').slice(0, 20);
}
