/**
 * Console pages of the staff inbox, over the same services as the API (plain forms, no JavaScript):
 *   /inbox                  conversations: show all / mine / unclaimed, topic, rumour, open or closed; paginated
 *   /inbox/:id              the thread, the WhatsApp window, claim / release, reply (free text or a key
 *                           message), topic, rumour, close / reopen
 *   /inbox/:id/faq?reply=N  turn a free-text answer into a key-message draft and an FAQ entry
 * A refused action (another operator's claim, the window closed…) shows the conversation page again with
 * the reason.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError, forbidden, notFound } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import {
  CLAIM_TIMEOUT_MINUTES, SHOW, claimConversation, closeConversation, faqDraft, faqFromReply, getConversation, keyMessageChoices, listConversations, listQuerySchema,
  releaseConversation, reopenConversation, replyToConversation, setRumour, tagConversation, topicChoices, type Viewer,
} from './service.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, unknown>;
const str = (v: unknown) => (Array.isArray(v) ? String(v[0] ?? '') : typeof v === 'string' ? v : '');
const viewer = (ctx: Ctx): Viewer => ({ actor: ctx.state.actor!, permissions: ctx.state.permissions ?? [] });
const can = (ctx: Ctx, p: string) => (ctx.state.permissions ?? []).includes(p as never);

/** Refusals the console words in the operator's language (inbox.refused.CODE), with their particulars. */
const REFUSALS = new Set([
  'claimed_by_other', 'not_claimed', 'not_claimer', 'conversation_closed', 'conversation_open', 'window_closed', 'no_template', 'contact_blocked', 'contact_stopped',
  'no_address', 'not_free_text', 'already_faq', 'text_erased', 'message_not_approved', 'message_archived',
]);
const when = (v: unknown) => (typeof v === 'string' && v ? v.replace('T', ' ').slice(0, 16) + ' UTC' : '');

export interface Refusal {
  /** Locale key, when the console has words for it; else `text` (the service's English sentence). */
  key: string | null;
  text: string;
  who: string;
  at: string;
  until: string;
}

/**
 * Runs fn; a refusal the operator can act on (400, 403, 409) comes back for the page: the reason in
 * a sentence, and the fields to correct.
 */
async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; refusal: Refusal; errors: Record<string, string> | null }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof HttpError && [400, 403, 409].includes(e.status)) {
      const d = e.details ?? {};
      const fields = e.status === 400 ? (Object.fromEntries(Object.entries(d).filter(([, v]) => typeof v === 'string')) as Record<string, string>) : {};
      const refusal: Refusal = {
        key: REFUSALS.has(e.code) ? `inbox.refused.${e.code}` : null,
        text: e.message,
        who: typeof d.claimedBy === 'string' ? d.claimedBy : '',
        at: when(d.claimedAt),
        until: when(d.windowClosedAt),
      };
      return { ok: false, status: e.status, refusal, errors: Object.keys(fields).length ? fields : null };
    }
    const z = e as { issues?: { path: PropertyKey[]; message: string }[] };
    if (Array.isArray(z.issues)) {
      const errors = Object.fromEntries(z.issues.map((i) => [i.path.map(String).join('.') || 'request', i.message]));
      return { ok: false, status: 400, refusal: { key: 'inbox.refused.invalid', text: '', who: '', at: '', until: '' }, errors };
    }
    throw e;
  }
}

/** The FAQ pages need inbox.reply besides messages.write (which `needs` checks). */
function forbiddenPage(ctx: Ctx): never {
  ctx.state.html = true;
  throw forbidden();
}

function idOf(ctx: Ctx): number {
  const id = Number(ctx.params.id);
  if (!Number.isInteger(id) || id <= 0) throw notFound('There is no such conversation');
  return id;
}

export function inboxConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);

  // ------------------------------------------------------------------------------------ list
  r.get('/inbox', needs('inbox.read'), h(async (ctx) => {
    const raw: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.query)) if (typeof v === 'string' && v !== '') raw[k] = v;
    const parsed = listQuerySchema.safeParse(raw);
    const f = parsed.success ? parsed.data : listQuerySchema.parse({});
    const page = await listConversations(ctx.services.db, viewer(ctx), f);
    const { offset: _o, limit: _l, ...kept } = raw;
    const qs = (offset: number) => new URLSearchParams({ ...kept, offset: String(offset) }).toString();
    view(ctx, 'inbox/index', {
      title: 'nav.inbox',
      rows: page.data,
      total: page.total,
      counts: page.counts,
      from: page.total === 0 ? 0 : f.offset + 1,
      to: Math.min(page.total, f.offset + f.limit),
      prevQuery: f.offset > 0 ? qs(Math.max(0, f.offset - f.limit)) : null,
      nextQuery: f.offset + f.limit < page.total ? qs(f.offset + f.limit) : null,
      f: { ...raw, show: f.show, status: f.status },
      shows: SHOW,
      topics: await topicChoices(ctx.services.db.knex),
      errors: parsed.success ? null : Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])),
    });
  }));

  // ------------------------------------------------------------------------------------ one conversation
  const conversationPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { db, config } = ctx.services;
    const c = await getConversation(db, viewer(ctx), idOf(ctx));
    const canWrite = can(ctx, 'inbox.reply');
    view(ctx, 'inbox/conversation', {
      title: 'inbox.conversation',
      c: { ...c, thread: c.thread.map((m) => ({ ...m, iso: m.at.toISOString() })) },
      canWrite,
      canFaq: canWrite && can(ctx, 'messages.write'),
      canSeeContact: can(ctx, 'contacts.read'),
      focal: can(ctx, 'complaints.sensitive'),
      keyMessages: c.canReply ? await keyMessageChoices(db, config, c) : [],
      topics: await topicChoices(db.knex),
      timeout: CLAIM_TIMEOUT_MINUTES,
      form: {},
      ...extra,
    }, status);
  };

  r.get('/inbox/:id', needs('inbox.read'), h((ctx) => conversationPage(ctx)));

  /** A change on the conversation: on a refusal, the conversation page with the reason. */
  const change = (fn: (ctx: Ctx, b: Record<string, unknown>, id: number) => Promise<string | void>) =>
    [needs('inbox.reply'), h(async (ctx: Ctx) => {
      const id = idOf(ctx);
      const b = body(ctx);
      const res = await attempt(() => fn(ctx, b, id));
      if (!res.ok) return conversationPage(ctx, { refusal: res.refusal, errors: res.errors, form: { text: str(b.text) } }, res.status);
      flash(ctx, res.value || 'flash.saved');
      ctx.redirect(`/inbox/${id}`);
    })] as const;

  r.post('/inbox/:id/claim', ...change(async (ctx, _b, id) => {
    const { tookOver } = await claimConversation(ctx.services.db, viewer(ctx), id);
    return tookOver ? 'inbox.tookOver' : 'inbox.claimed';
  }));
  r.post('/inbox/:id/release', ...change(async (ctx, _b, id) => {
    await releaseConversation(ctx.services.db, viewer(ctx), id);
    return 'inbox.released';
  }));
  r.post('/inbox/:id/reply', ...change(async (ctx, b, id) => {
    const keyMessageId = str(b.key_message_id);
    const input = keyMessageId ? { keyMessageId: Number(keyMessageId) } : { text: str(b.text) };
    await replyToConversation(ctx.services.db, ctx.services.config, viewer(ctx), id, input);
    return 'inbox.replied';
  }));
  r.post('/inbox/:id/tag', ...change(async (ctx, b, id) => {
    await tagConversation(ctx.services.db, viewer(ctx), id, str(b.topic) || null);
  }));
  r.post('/inbox/:id/rumour', ...change(async (ctx, b, id) => {
    await setRumour(ctx.services.db, viewer(ctx), id, str(b.rumour) === 'true');
  }));
  r.post('/inbox/:id/close', ...change(async (ctx, _b, id) => {
    await closeConversation(ctx.services.db, viewer(ctx), id);
    return 'inbox.closed';
  }));
  r.post('/inbox/:id/reopen', ...change(async (ctx, _b, id) => {
    await reopenConversation(ctx.services.db, viewer(ctx), id);
  }));

  // ------------------------------------------------------------------------------------ FAQ from an answer
  const faqPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { db, config } = ctx.services;
    const id = idOf(ctx);
    const replyId = Number(str(ctx.query.reply) || str(body(ctx).reply_id));
    if (!Number.isInteger(replyId) || replyId <= 0) throw notFound('There is no such reply in this conversation');
    const draft = await faqDraft(db, config, viewer(ctx), id, replyId);
    view(ctx, 'inbox/faq', {
      title: 'inbox.faqTitle',
      id,
      draft,
      topics: await topicChoices(db.knex),
      form: { title: draft.title, key: draft.key, topic: draft.topic, text: draft.text ?? '', keywords: draft.keywords.join(', '), submit: 'yes' },
      ...extra,
    }, status);
  };

  r.get('/inbox/:id/faq', needs('messages.write'), h(async (ctx) => {
    if (!can(ctx, 'inbox.reply')) return forbiddenPage(ctx);
    await faqPage(ctx);
  }));

  r.post('/inbox/:id/faq', needs('messages.write'), h(async (ctx) => {
    if (!can(ctx, 'inbox.reply')) return forbiddenPage(ctx);
    const id = idOf(ctx);
    const b = body(ctx);
    const res = await attempt(() =>
      faqFromReply(ctx.services.db, ctx.services.config, viewer(ctx), id, {
        replyId: Number(str(b.reply_id)),
        title: str(b.title),
        key: str(b.key).trim() || undefined,
        topic: str(b.topic) || undefined,
        text: str(b.text).trim() || undefined,
        keywords: str(b.keywords).split(/[,\n]/).map((k) => k.trim()).filter(Boolean),
        submit: str(b.submit) === 'yes',
      }),
    );
    if (!res.ok) {
      const form = { title: str(b.title), key: str(b.key), topic: str(b.topic), text: str(b.text), keywords: str(b.keywords), submit: str(b.submit) };
      return faqPage(ctx, { form, refusal: res.refusal, errors: res.errors }, res.status);
    }
    flash(ctx, 'inbox.faqCreated');
    ctx.redirect(`/messages/${res.value.message.id}`);
  }));

  return r;
}
