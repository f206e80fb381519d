/**
 * Who is calling: an API token (Authorization: Bearer), or a console session (cookie).
 * Also CSRF protection for every state-changing request that a browser could send on its own.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Next } from 'koa';
import type { Ctx } from './context.js';
import { HttpError } from './errors.js';
import { findSession, findToken } from '../staff/service.js';
import { ROLE_PERMISSIONS } from '../staff/roles.js';

export const SESSION_COOKIE = 'ayni_session';
export const CSRF_COOKIE = 'ayni_csrf';
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export function authenticate() {
  return async (ctx: Ctx, next: Next) => {
    const { db } = ctx.services;
    const header = ctx.get('authorization');
    if (header) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      const token = m ? await findToken(db, m[1]) : null;
      if (!token) throw new HttpError(401, 'unauthorized', 'The API token is missing, unknown or revoked');
      ctx.state.actor = { type: 'token', id: token.id, label: `token:${token.name}`, role: token.role, requestId: ctx.state.requestId };
      ctx.state.permissions = ROLE_PERMISSIONS[token.role];
      return next();
    }
    const cookie = ctx.cookies.get(SESSION_COOKIE);
    if (cookie) {
      const found = await findSession(db, cookie);
      if (found) {
        const { user, session } = found;
        ctx.state.actor = { type: 'staff', id: user.id, userId: user.id, label: user.email, role: user.role, requestId: ctx.state.requestId };
        ctx.state.permissions = ROLE_PERMISSIONS[user.role];
        ctx.state.session = { cookie, csrfToken: session.csrfToken, userId: user.id, locale: user.locale, name: user.name };
      } else {
        ctx.cookies.set(SESSION_COOKIE, null);
      }
    }
    return next();
  };
}

/** The CSRF token for this browser: the session's, or for signed-out forms a random cookie (double submit). */
export function csrfToken(ctx: Ctx): string {
  if (ctx.state.session) return ctx.state.session.csrfToken;
  let t = ctx.cookies.get(CSRF_COOKIE);
  if (!t || !/^[A-Za-z0-9_-]{32,64}$/.test(t)) {
    t = randomBytes(24).toString('base64url');
    ctx.cookies.set(CSRF_COOKIE, t, { httpOnly: true, sameSite: 'lax', secure: ctx.services.config.COOKIE_SECURE, overwrite: true });
  }
  return t;
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Refuses a state-changing request sent with cookies unless it carries the CSRF token, as the
 * `_csrf` form field or the X-CSRF-Token header. Bearer-token requests are exempt: a browser
 * never adds that header by itself.
 */
export function csrfProtect() {
  return async (ctx: Ctx, next: Next) => {
    if (SAFE.has(ctx.method) || ctx.get('authorization')) return next();
    const expected = ctx.state.session?.csrfToken ?? ctx.cookies.get(CSRF_COOKIE);
    const body = (ctx.request as { body?: unknown }).body;
    const sent = ctx.get('x-csrf-token') || (body && typeof body === 'object' ? String((body as Record<string, unknown>)._csrf ?? '') : '');
    if (!expected || !sent || !equal(expected, sent)) {
      throw new HttpError(403, 'csrf_failed', 'The form has expired or did not come from this site; reload the page and try again');
    }
    return next();
  };
}
