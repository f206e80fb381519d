/**
 * The console's phone simulator (permission simulator.use):
 *   GET  /simulator?number=…&medium=whatsapp|sms   the simulated phone of a test number
 *   GET  /simulator/thread?number=…&medium=…       its conversation alone (what static/simulator.js polls)
 *   POST /simulator/send                           the test contact types a message or taps a button
 * Works without JavaScript: after sending, the page reloads itself while replies are on their way
 * (a refresh inside <noscript>), and a Refresh link is always there.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { localeOf, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { csrfToken } from '../http/auth.js';
import type { Medium } from '../messaging/types.js';
import { listTestContacts } from './contacts.js';
import { conversation, simulatorSend, type Conversation } from './service.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const str = (v: unknown) => (typeof v === 'string' ? v : Array.isArray(v) ? String(v[0] ?? '') : '');
const mediumOf = (v: unknown): Medium => (str(v) === 'sms' ? 'sms' : 'whatsapp');

export const EXAMPLE_NUMBER = '+51 999 000 001';

/** HH:MM:SS in the programme's time zone. */
const clock = (iso: string, timezone: string) => new Intl.DateTimeFormat('en-GB', { timeZone: timezone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(iso));

function threadData(conv: Conversation, timezone: string) {
  return {
    conv,
    whatsapp: conv.medium === 'whatsapp',
    messages: conv.messages.map((m) => ({
      ...m,
      fromPerson: m.direction === 'in',
      time: clock(m.at, timezone),
      failed: m.status === 'failed' || m.status === 'skipped' || m.status === 'cancelled',
      waiting: m.status === 'queued' || m.status === 'sending',
    })),
    query: `number=${encodeURIComponent(conv.number)}&medium=${conv.medium}`,
  };
}

export function simulatorConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();

  const page = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { db } = ctx.services;
    const number = str(ctx.query.number ?? (extra.form as Record<string, string> | undefined)?.number).trim();
    const medium = mediumOf(ctx.query.medium ?? (extra.form as Record<string, string> | undefined)?.medium);
    let thread: ReturnType<typeof threadData> | null = null;
    let errors = extra.errors as Record<string, unknown> | undefined;
    if (number) {
      try {
        thread = threadData(await conversation(ctx.services, number, medium, { markRead: true }), ctx.services.config.DEFAULT_TIMEZONE);
      } catch (e) {
        if (!(e instanceof HttpError) || e.status >= 500) throw e;
        errors = { ...(e.details ?? { number: e.message }), ...(errors ?? {}) };
        status = status === 200 ? e.status : status;
      }
    }
    const recent = (await listTestContacts(db.knex, { limit: 12 })).flatMap((c) => c.addresses.map((a) => ({ ...a, query: `number=${encodeURIComponent(a.address)}&medium=${a.medium}` })));
    render(ctx, renderer, 'simulator/index', {
      title: 'simulator.title',
      form: { number: number || '', medium, ...(extra.form as object) },
      example: EXAMPLE_NUMBER,
      recent,
      ...(thread ?? {}),
      hasThread: Boolean(thread),
      errors,
      // Without JavaScript the page reloads itself while replies are on their way.
      noscriptRefresh: thread && thread.conv.pending > 0 ? 2 : null,
    }, status);
  };

  r.get('/simulator', needs('simulator.use'), h((ctx) => page(ctx)));

  r.get('/simulator/thread', needs('simulator.use'), h(async (ctx) => {
    const conv = await conversation(ctx.services, str(ctx.query.number), mediumOf(ctx.query.medium), { markRead: true });
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = renderer.render('simulator/thread', { ...threadData(conv, ctx.services.config.DEFAULT_TIMEZONE), locale: localeOf(ctx), csrf: csrfToken(ctx) }, '');
  }));

  r.post('/simulator/send', needs('simulator.use'), h(async (ctx) => {
    const b = (ctx.request.body ?? {}) as Record<string, unknown>;
    const form = { number: str(b.number), medium: mediumOf(b.medium), text: str(b.text), payload: str(b.payload) || undefined, tap: (str(b.tap) || undefined) as 'button' | 'list' | undefined };
    try {
      await simulatorSend(ctx.services, ctx.state.actor!, form);
    } catch (e) {
      if (e instanceof HttpError && e.status < 500) {
        ctx.query = { number: form.number, medium: form.medium };
        return page(ctx, { form, errors: e.details ?? { text: e.message } }, e.status);
      }
      throw e;
    }
    ctx.redirect(`/simulator?number=${encodeURIComponent(form.number)}&medium=${form.medium}#compose`);
  }));

  return r;
}
