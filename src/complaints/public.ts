/**
 * The public feedback form at /feedback: no sign-in, one small page that works on a basic phone
 * browser (plain HTML form, no JavaScript, a few kilobytes), in Spanish or English (?lang=en).
 *
 * CSRF: the double-submit cookie of src/http/auth.ts (`csrfToken` sets a random cookie and the page
 * repeats it in a hidden field; `csrfProtect` refuses a POST whose field does not match).
 * Rate limit: COMPLAINTS_FORM_MAX_PER_HOUR accepted submissions per client address (kept only as
 * a hash, for two hours) — a 429 page beyond it.
 */
import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { csrfProtect, csrfToken } from '../http/auth.js';
import { HttpError } from '../http/errors.js';
import type { Renderer } from '../console/render.js';
import { Renderer as ConsoleRenderer } from '../console/render.js';
import { formAllowed, recordFormHit, submitWebComplaint } from './entry.js';
import { CATEGORIES } from './model.js';

type Lang = 'es' | 'en';
const langOf = (ctx: Ctx, fromBody?: unknown): Lang => {
  const v = typeof fromBody === 'string' ? fromBody : typeof ctx.query.lang === 'string' ? ctx.query.lang : '';
  if (v === 'en' || v === 'es') return v;
  return ctx.acceptsLanguages(['es', 'en']) === 'en' ? 'en' : 'es';
};

export function publicRouter(given?: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const renderer = given ?? new ConsoleRenderer();
  const consentVersion = (lang: Lang) => createHash('sha256').update(renderer.t(lang, 'feedback.consent')).digest('hex').slice(0, 12);

  const page = (ctx: Ctx, name: string, lang: Lang, data: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = renderer.render(`complaints/${name}`, { ...data, locale: lang, otherLang: lang === 'es' ? 'en' : 'es', csrf: csrfToken(ctx) }, 'none');
  };
  const formPage = (ctx: Ctx, lang: Lang, extra: Record<string, unknown> = {}, status = 200) =>
    page(ctx, 'feedback', lang, { title: 'feedback.title', categories: CATEGORIES.map((c) => ({ key: c, sensitive: ['sea', 'fraud', 'misconduct', 'safety'].includes(c) })), form: { identity: 'anonymous', reply: 'none' }, ...extra }, status);

  r.get('/feedback', (koaCtx) => {
    const ctx = koaCtx as unknown as Ctx;
    formPage(ctx, langOf(ctx));
  });

  r.post('/feedback', async (koaCtx) => {
    const ctx = koaCtx as unknown as Ctx;
    const b = (ctx.request.body ?? {}) as Record<string, string>;
    const lang = langOf(ctx, b.language);
    try {
      await csrfProtect()(ctx, async () => undefined);
    } catch (e) {
      if (e instanceof HttpError && e.status === 403) return page(ctx, 'feedback-error', lang, { title: 'feedback.title', message: 'feedback.expired' }, 403);
      throw e;
    }
    const { db, config } = ctx.services;
    if (!(await formAllowed(db.knex, config, ctx.ip))) {
      ctx.set('Retry-After', '3600');
      return page(ctx, 'feedback-error', lang, { title: 'feedback.title', message: 'feedback.tooMany' }, 429);
    }
    try {
      const opened = await submitWebComplaint(db, config, { ...b, language: lang, consent: b.consent === 'yes' ? 'yes' : undefined } as never, { key: 'web:feedback.consent', version: consentVersion(lang) });
      await recordFormHit(db.knex, ctx.ip);
      page(ctx, 'feedback-done', lang, { title: 'feedback.title', code: opened.code, anonymous: opened.anonymous }, 201);
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) {
        const errors = Object.fromEntries(Object.entries(e.details ?? {}).map(([k, v]) => [k, String(v)]));
        return formPage(ctx, lang, { form: b, errors }, 400);
      }
      throw e;
    }
  });

  return r;
}
