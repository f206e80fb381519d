/**
 * Staff users, console sessions, API tokens and login throttling.
 * Secrets (passwords, session cookies, tokens) are stored only as hashes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Database } from '../db/orm.js';
import { toBool, toDate, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { ApiToken, StaffSession, StaffUser } from './entities.js';
import { generatePassword, hashPassword, verifyPassword } from './passwords.js';
import { ROLES, type Role } from './roles.js';
import { audit, type Actor } from './audit.js';

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url');

export const newUserSchema = z.object({
  email: z.email().max(254).transform((e) => e.toLowerCase()),
  name: z.string().trim().min(1).max(200),
  role: z.enum(ROLES),
  password: z.string().min(12, { message: 'must be at least 12 characters' }).max(200).optional(),
  locale: z.enum(['en', 'es']).default('en'),
});
export type NewUser = z.input<typeof newUserSchema>;

export const updateUserSchema = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  role: z.enum(ROLES).optional(),
  locale: z.enum(['en', 'es']).optional(),
  active: z.boolean().optional(),
  password: z.string().min(12, { message: 'must be at least 12 characters' }).max(200).optional(),
});

export interface PublicUser {
  id: number;
  email: string;
  name: string;
  role: Role;
  locale: string;
  active: boolean;
  lastLoginAt: string | null;
  createdAt: string;
}

export function publicUser(u: StaffUser): PublicUser {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    locale: u.locale,
    active: u.active,
    lastLoginAt: u.lastLoginAt ? u.lastLoginAt.toISOString() : null,
    createdAt: u.createdAt.toISOString(),
  };
}

/** Creates a staff user. Without a password, one is generated and returned (shown once). */
export async function createUser(db: Database, actor: Actor, input: NewUser): Promise<{ user: PublicUser; password: string }> {
  const data = newUserSchema.parse(input);
  const em = db.em();
  if (await em.count(StaffUser, { email: data.email })) {
    throw new HttpError(409, 'conflict', 'A staff user with this e-mail already exists', { email: 'already in use' });
  }
  const password = data.password ?? generatePassword();
  const user = em.create(StaffUser, {
    email: data.email,
    name: data.name,
    role: data.role,
    locale: data.locale,
    passwordHash: await hashPassword(password),
    active: true,
    createdAt: new Date(),
    updatedAt: new Date(),
  });
  await em.flush();
  await audit(db, actor, { action: 'staff.create', entityType: 'staff_user', entityId: user.id, detail: { role: user.role } });
  return { user: publicUser(user), password };
}

export async function listUsers(db: Database): Promise<PublicUser[]> {
  const users = await db.em().find(StaffUser, {}, { orderBy: { email: 'asc' } });
  return users.map(publicUser);
}

export async function getUser(db: Database, id: number): Promise<StaffUser> {
  const user = await db.em().findOne(StaffUser, { id });
  if (!user) throw new HttpError(404, 'not_found', 'No such staff user');
  return user;
}

export async function updateUser(db: Database, actor: Actor, id: number, input: z.input<typeof updateUserSchema>): Promise<PublicUser> {
  const data = updateUserSchema.parse(input);
  const em = db.em();
  const user = await em.findOne(StaffUser, { id });
  if (!user) throw new HttpError(404, 'not_found', 'No such staff user');
  if (user.role === 'admin' && ((data.role && data.role !== 'admin') || data.active === false)) {
    const admins = await em.count(StaffUser, { role: 'admin', active: true });
    if (admins <= 1) throw new HttpError(409, 'conflict', 'This is the last active admin', { role: 'at least one active admin must remain' });
  }
  if (data.name !== undefined) user.name = data.name;
  if (data.role !== undefined) user.role = data.role;
  if (data.locale !== undefined) user.locale = data.locale;
  if (data.active !== undefined) user.active = data.active;
  if (data.password !== undefined) user.passwordHash = await hashPassword(data.password);
  await em.flush();
  if (data.active === false || data.password !== undefined || data.role !== undefined) {
    await em.nativeDelete(StaffSession, { user: user.id });
  }
  const changed = Object.keys(data).filter((k) => k !== 'password');
  if (data.password !== undefined) changed.push('password');
  await audit(db, actor, { action: 'staff.update', entityType: 'staff_user', entityId: id, detail: { changed } });
  return publicUser(user);
}

export async function countUsers(db: Database): Promise<number> {
  return db.em().count(StaffUser, {});
}

// ---------------------------------------------------------------- login & throttling

export interface LoginLimits {
  maxFailures: number;
  lockMinutes: number;
}

export type LoginResult =
  | { ok: true; user: StaffUser }
  | { ok: false; reason: 'invalid' | 'throttled' };

/** Checks a password, with throttling per e-mail and per client address; every attempt is recorded. */
export async function attemptLogin(db: Database, email: string, password: string, ip: string, limits: LoginLimits): Promise<LoginResult> {
  const emailHash = sha256(email.trim().toLowerCase());
  const ipHash = sha256(ip);
  const since = new Date(Date.now() - limits.lockMinutes * 60_000);
  const failures = async (column: string, value: string) =>
    toInt((await db.knex('login_attempts').where(column, value).where('success', false).where('at', '>=', since).count({ n: '*' }).first())?.n);
  if ((await failures('email_hash', emailHash)) >= limits.maxFailures || (await failures('ip_hash', ipHash)) >= limits.maxFailures * 4) {
    return { ok: false, reason: 'throttled' };
  }
  const em = db.em();
  const user = await em.findOne(StaffUser, { email: email.trim().toLowerCase() });
  // Verify against a dummy hash when the user is unknown, so timing does not reveal which e-mails exist.
  const ok = user && user.active ? await verifyPassword(password, user.passwordHash) : (await verifyPassword(password, DUMMY_HASH), false);
  await db.knex('login_attempts').insert({ email_hash: emailHash, ip_hash: ipHash, success: Boolean(ok), at: new Date() });
  if (!ok || !user) return { ok: false, reason: 'invalid' };
  user.lastLoginAt = new Date();
  await em.flush();
  // a successful login clears this e-mail's failures
  await db.knex('login_attempts').where('email_hash', emailHash).where('success', false).delete();
  return { ok: true, user };
}

const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$' + Buffer.alloc(64).toString('base64');

// ---------------------------------------------------------------- sessions

export async function createSession(db: Database, userId: number, ttlHours: number): Promise<{ cookie: string; csrfToken: string; expiresAt: Date }> {
  const cookie = randomToken();
  const csrfToken = randomToken();
  const expiresAt = new Date(Date.now() + ttlHours * 3_600_000);
  await db.knex('staff_sessions').insert({ id: sha256(cookie), user_id: userId, csrf_token: csrfToken, created_at: new Date(), expires_at: expiresAt });
  return { cookie, csrfToken, expiresAt };
}

export interface SessionUser {
  id: number;
  email: string;
  name: string;
  role: Role;
  locale: string;
}

/** The signed-in user behind a session cookie (one indexed query on every console request). */
export async function findSession(db: Database, cookie: string): Promise<{ session: { id: string; csrfToken: string }; user: SessionUser } | null> {
  const id = sha256(cookie);
  const row = await db
    .knex('staff_sessions as s')
    .join('staff_users as u', 'u.id', 's.user_id')
    .where('s.id', id)
    .first('s.csrf_token', 's.expires_at', 'u.id', 'u.email', 'u.name', 'u.role', 'u.locale', 'u.active');
  if (!row) return null;
  if (toDate(row.expires_at).getTime() <= Date.now() || !toBool(row.active)) {
    await db.knex('staff_sessions').where('id', id).delete();
    return null;
  }
  return {
    session: { id, csrfToken: row.csrf_token },
    user: { id: toInt(row.id), email: row.email, name: row.name, role: row.role, locale: row.locale },
  };
}

export async function destroySession(db: Database, cookie: string): Promise<void> {
  await db.knex('staff_sessions').where('id', sha256(cookie)).delete();
}

export async function purgeExpiredSessions(db: Database, now = new Date()): Promise<number> {
  const sessions = await db.knex('staff_sessions').where('expires_at', '<', now).delete();
  const attempts = await db.knex('login_attempts').where('at', '<', new Date(now.getTime() - 30 * 86_400_000)).delete();
  return Number(sessions) + Number(attempts);
}

// ---------------------------------------------------------------- API tokens

export const newTokenSchema = z.object({
  name: z.string().trim().min(1).max(200),
  role: z.enum(ROLES),
});

export interface PublicToken {
  id: number;
  name: string;
  prefix: string;
  role: Role;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

function publicToken(t: ApiToken): PublicToken {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    role: t.role,
    createdAt: t.createdAt.toISOString(),
    lastUsedAt: t.lastUsedAt ? t.lastUsedAt.toISOString() : null,
    revokedAt: t.revokedAt ? t.revokedAt.toISOString() : null,
  };
}

/** Creates an API token; the returned secret is shown once and stored only as a hash. */
export async function createToken(db: Database, actor: Actor, input: z.input<typeof newTokenSchema>): Promise<{ token: PublicToken; secret: string }> {
  const data = newTokenSchema.parse(input);
  const prefix = randomBytes(6).toString('hex');
  const secret = `ayni_${prefix}_${randomToken()}`;
  const em = db.em();
  const token = em.create(ApiToken, {
    name: data.name,
    role: data.role,
    prefix,
    tokenHash: sha256(secret),
    createdBy: actor.type === 'staff' && actor.id ? em.getReference(StaffUser, actor.id) : null,
    createdAt: new Date(),
  });
  await em.flush();
  await audit(db, actor, { action: 'token.create', entityType: 'api_token', entityId: token.id, detail: { role: token.role } });
  return { token: publicToken(token), secret };
}

export async function listTokens(db: Database): Promise<PublicToken[]> {
  return (await db.em().find(ApiToken, {}, { orderBy: { id: 'desc' } })).map(publicToken);
}

export async function revokeToken(db: Database, actor: Actor, id: number): Promise<PublicToken> {
  const em = db.em();
  const token = await em.findOne(ApiToken, { id });
  if (!token) throw new HttpError(404, 'not_found', 'No such API token');
  if (!token.revokedAt) {
    token.revokedAt = new Date();
    await em.flush();
    await audit(db, actor, { action: 'token.revoke', entityType: 'api_token', entityId: id });
  }
  return publicToken(token);
}

/** Resolves a bearer secret to its token (one indexed query); null when unknown or revoked. */
export async function findToken(db: Database, secret: string): Promise<{ id: number; name: string; role: Role } | null> {
  if (!/^ayni_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}$/.test(secret)) return null;
  const row = await db.knex('api_tokens').where('token_hash', sha256(secret)).whereNull('revoked_at').first('id', 'name', 'role', 'last_used_at');
  if (!row) return null;
  // last-used is informative; write it at most once a minute
  const lastUsed = row.last_used_at === null || row.last_used_at === undefined ? 0 : toDate(row.last_used_at).getTime();
  if (Date.now() - lastUsed > 60_000) {
    await db.knex('api_tokens').where('id', row.id).update({ last_used_at: new Date() });
  }
  return { id: toInt(row.id), name: row.name, role: row.role };
}

/** Creates the first admin when there are no staff users yet. Returns the password to print once, or null. */
export async function ensureFirstAdmin(db: Database, email: string, password?: string): Promise<{ email: string; password: string } | null> {
  if ((await countUsers(db)) > 0) return null;
  const created = await createUser(db, { type: 'system', id: null, label: 'system', role: 'system' }, {
    email,
    name: 'Administrator',
    role: 'admin',
    password,
  });
  return { email: created.user.email, password: created.password };
}
