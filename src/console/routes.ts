/** The console shell: sign in and out, home, staff users, API tokens, audit log. */
import Router from '@koa/router';
import { z } from 'zod';
import type { AppState, Ctx } from '../http/context.js';
import { SESSION_COOKIE } from '../http/auth.js';
import { HttpError, zodDetails } from '../http/errors.js';
import { attemptLogin, createSession, destroySession, listUsers, createUser, updateUser, listTokens, createToken, revokeToken, newUserSchema, newTokenSchema } from '../staff/service.js';
import { audit, listAudit } from '../staff/audit.js';
import { ROLES } from '../staff/roles.js';
import { flash, needs, render } from './page.js';
import { dashboardPage } from '../reports/console.js';
import { LOCALES, type Renderer } from './render.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);

/** Only same-site relative paths are followed after sign-in. */
function safeNext(v: unknown): string {
  return typeof v === 'string' && /^\/(?!\/)[^\s\\]*$/.test(v) ? v : '/';
}

export function consoleRouter(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);

  r.get('/login', h((ctx) => {
    if (ctx.state.session) return ctx.redirect('/');
    view(ctx, 'login', { next: safeNext(ctx.query.next) }, 200);
  }));

  r.post('/login', h(async (ctx) => {
    const { config, db } = ctx.services;
    const body = (ctx.request.body ?? {}) as Record<string, string>;
    const next = safeNext(body.next);
    const result = await attemptLogin(db, String(body.email ?? ''), String(body.password ?? ''), ctx.ip, {
      maxFailures: config.LOGIN_MAX_FAILURES,
      lockMinutes: config.LOGIN_LOCK_MINUTES,
    });
    if (!result.ok) {
      const status = result.reason === 'throttled' ? 429 : 401;
      return view(ctx, 'login', { next, email: body.email, error: result.reason === 'throttled' ? 'login.throttled' : 'login.invalid' }, status);
    }
    const s = await createSession(db, result.user.id, config.SESSION_TTL_HOURS);
    ctx.cookies.set(SESSION_COOKIE, s.cookie, { httpOnly: true, sameSite: 'lax', secure: config.COOKIE_SECURE, expires: s.expiresAt, overwrite: true });
    await audit(db, { type: 'staff', id: result.user.id, label: result.user.email, role: result.user.role, requestId: ctx.state.requestId }, { action: 'staff.login', entityType: 'staff_user', entityId: result.user.id });
    ctx.redirect(next);
  }));

  r.post('/logout', h(async (ctx) => {
    if (ctx.state.session) await destroySession(ctx.services.db, ctx.state.session.cookie);
    ctx.cookies.set(SESSION_COOKIE, null);
    ctx.redirect('/login');
  }));

  r.post('/locale', h(async (ctx) => {
    const lang = String((ctx.request.body as Record<string, unknown>)?.locale ?? '');
    if ((LOCALES as readonly string[]).includes(lang)) {
      ctx.cookies.set('ayni_lang', lang, { httpOnly: true, sameSite: 'lax', maxAge: 365 * 86_400_000 });
      // Signed in: the staff user's own language changes (it is what the console uses for them).
      if (ctx.state.session) await updateUser(ctx.services.db, ctx.state.actor!, ctx.state.session.userId, { locale: lang as 'en' | 'es' });
    }
    ctx.redirect(safeNext((ctx.request.body as Record<string, unknown>)?.next));
  }));

  // The signed-in home is the dashboard (src/reports/); a role without reports.read gets the menu as cards.
  r.get('/', needs(null), h((ctx) => (ctx.state.permissions?.includes('reports.read') ? dashboardPage(ctx, renderer) : view(ctx, 'home', { title: 'nav.home' }))));

  // ---------------------------------------------------------------- staff users
  r.get('/staff/users', needs('staff.manage'), h(async (ctx) => {
    view(ctx, 'staff/users', { users: await listUsers(ctx.services.db), roles: ROLES });
  }));

  r.post('/staff/users', needs('staff.manage'), h(async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, string>;
    const parsed = newUserSchema.safeParse({ email: body.email, name: body.name, role: body.role, locale: body.locale || 'en', password: body.password || undefined });
    if (!parsed.success) {
      return view(ctx, 'staff/users', { users: await listUsers(ctx.services.db), roles: ROLES, form: body, errors: zodDetails(parsed.error) }, 400);
    }
    try {
      const created = await createUser(ctx.services.db, ctx.state.actor!, parsed.data);
      view(ctx, 'staff/users', { users: await listUsers(ctx.services.db), roles: ROLES, created: { email: created.user.email, password: body.password ? null : created.password } }, 201);
    } catch (e) {
      if (e instanceof HttpError && e.status === 409) {
        return view(ctx, 'staff/users', { users: await listUsers(ctx.services.db), roles: ROLES, form: body, errors: e.details }, 409);
      }
      throw e;
    }
  }));

  r.post('/staff/users/:id', needs('staff.manage'), h(async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, string>;
    const id = Number(ctx.params.id);
    const parsed = z.object({ role: z.enum(ROLES).optional(), active: z.enum(['true', 'false']).optional() }).safeParse(body);
    if (!parsed.success || !Number.isInteger(id)) throw new HttpError(400, 'validation_failed', 'The request is not valid', parsed.success ? { id: 'must be a number' } : zodDetails(parsed.error));
    await updateUser(ctx.services.db, ctx.state.actor!, id, { role: parsed.data.role, active: parsed.data.active === undefined ? undefined : parsed.data.active === 'true' });
    flash(ctx, 'flash.saved');
    ctx.redirect('/staff/users');
  }));

  // ---------------------------------------------------------------- API tokens
  r.get('/staff/tokens', needs('staff.manage'), h(async (ctx) => {
    view(ctx, 'staff/tokens', { tokens: await listTokens(ctx.services.db), roles: ROLES });
  }));

  r.post('/staff/tokens', needs('staff.manage'), h(async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, string>;
    const parsed = newTokenSchema.safeParse({ name: body.name, role: body.role });
    if (!parsed.success) {
      return view(ctx, 'staff/tokens', { tokens: await listTokens(ctx.services.db), roles: ROLES, form: body, errors: zodDetails(parsed.error) }, 400);
    }
    const created = await createToken(ctx.services.db, ctx.state.actor!, parsed.data);
    view(ctx, 'staff/tokens', { tokens: await listTokens(ctx.services.db), roles: ROLES, secret: created.secret }, 201);
  }));

  r.post('/staff/tokens/:id/revoke', needs('staff.manage'), h(async (ctx) => {
    await revokeToken(ctx.services.db, ctx.state.actor!, Number(ctx.params.id));
    flash(ctx, 'flash.revoked');
    ctx.redirect('/staff/tokens');
  }));

  // ---------------------------------------------------------------- audit
  r.get('/audit', needs('audit.read'), h(async (ctx) => {
    const before = Number(ctx.query.before) || undefined;
    const action = typeof ctx.query.action === 'string' && ctx.query.action ? ctx.query.action : undefined;
    const rows = await listAudit(ctx.services.db, { before, action, limit: 50 });
    const nextBefore = rows.length === 50 ? rows[rows.length - 1].id : null;
    view(ctx, 'audit', { rows, action, nextBefore });
  }));

  return r;
}
