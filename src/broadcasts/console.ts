/**
 * Console pages of the broadcasts domain, over the same services as the API:
 *   /messages            the key-message bank: search, filter by topic and review state, write a message
 *   /messages/:id        one message: edit (a new draft version when approved), submit, approve or send back
 *                        (another staff user), versions, rendered preview per language, its FAQ entries
 *   /faq                 FAQ entries (keywords per language → a key message)
 *   /broadcasts          broadcasts with their status, paginated; compose (/broadcasts/new)
 *   /broadcasts/:id/preview   who, how many, by language and channel, cost, time, samples → send now or at a time
 *   /broadcasts/:id      live stats (the page refreshes itself while sending); pause, resume, cancel
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { measureSms, renderSms } from '../channels/sms.js';
import { listFields } from '../contacts/fields.js';
import { listLists } from '../contacts/lists.js';
import { listSegments } from '../contacts/segments/index.js';
import { messageLanguages } from '../messaging/texts.js';
import { audit } from '../staff/audit.js';
import { CHANNEL_POLICIES } from './audience.js';
import {
  BROADCAST_STATUSES,
  RECURRENCES,
  broadcastStats,
  cancelBroadcast,
  completeIfDone,
  createBroadcast,
  getBroadcast,
  listBroadcasts,
  pauseBroadcast,
  resumeBroadcast,
  scheduleBroadcast,
  sendBroadcast,
  type BroadcastStatus,
} from './broadcasts.js';
import { renderContent, renderText } from './content.js';
import { createFaq, deleteFaq, listFaq, updateFaq } from './faq.js';
import {
  MEDIA_KINDS,
  TOPICS,
  approvalProblems,
  approveMessage,
  createMessage,
  getMessage,
  listMessages,
  messageVersions,
  personOf,
  rejectMessage,
  submitMessage,
  updateMessage,
  type KeyMessage,
  type MessageVersion,
} from './messages.js';
import { previewAndKeep } from './preview.js';
import { localTime, zonedTime } from './quiet.js';
import { placeholderData } from './templates.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string | string[] | undefined>;
const str = (v: unknown) => (Array.isArray(v) ? String(v[0] ?? '') : typeof v === 'string' ? v : '');
const all = (v: unknown) => (Array.isArray(v) ? v.map(String) : typeof v === 'string' && v !== '' ? [v] : []);
const PAGE = 50;

async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; errors: Record<string, unknown> }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof HttpError && [400, 403, 409].includes(e.status)) return { ok: false, status: e.status, errors: e.details ?? { request: e.message } };
    const z = e as { issues?: { path: PropertyKey[]; message: string }[] };
    if (Array.isArray(z.issues)) return { ok: false, status: 400, errors: Object.fromEntries(z.issues.map((i) => [i.path.map(String).join('.') || 'request', i.message])) };
    throw e;
  }
}

function pager(ctx: Ctx, total: number, offset: number, base: Record<string, string>) {
  const q = (o: number) => new URLSearchParams({ ...base, offset: String(o) }).toString();
  return {
    total,
    from: total === 0 ? 0 : offset + 1,
    to: Math.min(total, offset + PAGE),
    prev: offset > 0 ? q(Math.max(0, offset - PAGE)) : null,
    next: offset + PAGE < total ? q(offset + PAGE) : null,
  };
}

/** Languages offered in forms: the system-message languages, the programme's, and any the message has. */
function formLanguages(ctx: Ctx, extra: string[] = []): string[] {
  return [...new Set([ctx.services.config.DEFAULT_LANGUAGE, ...messageLanguages(), ...extra])];
}

/** A message form's fields → the API's input. */
function messageForm(b: Record<string, unknown>, languages: string[]) {
  const variants: Record<string, unknown> = {};
  for (const lang of languages) {
    const text = str(b[`text_${lang}`]).trim();
    if (!text) continue;
    const name = str(b[`template_name_${lang}`]).trim();
    const params = str(b[`template_params_${lang}`]).split(/\r?\n/).map((p) => p.trim()).filter(Boolean);
    variants[lang] = { text, template: name ? { name, language: str(b[`template_language_${lang}`]).trim() || lang.replace('-', '_'), params } : null };
  }
  const kind = str(b.media_kind);
  const ref = str(b.media_ref).trim();
  const media = kind && ref ? { kind, ...(ref.startsWith('https://') ? { url: ref } : { id: ref }), ...(str(b.media_filename).trim() ? { filename: str(b.media_filename).trim() } : {}) } : null;
  return { title: str(b.title), topic: str(b.topic), rumour: str(b.rumour).trim() || null, variants, media };
}

function versionView(v: MessageVersion | null, languages: string[]) {
  return {
    perLanguage: languages.map((lang) => {
      const x = v?.variants[lang];
      return { lang, text: x?.text ?? '', templateName: x?.template?.name ?? '', templateLanguage: x?.template?.language ?? '', templateParams: (x?.template?.params ?? []).join('\n') };
    }),
    mediaKind: v?.media?.kind ?? '',
    mediaRef: v?.media?.url ?? v?.media?.id ?? '',
    mediaFilename: v?.media?.filename ?? '',
  };
}

/** Each language as WhatsApp and SMS would show it, with example values for the variables. */
async function rendered(ctx: Ctx, v: MessageVersion) {
  const keys = (await listFields(ctx.services.db.knex)).map((f) => f.key);
  return Object.keys(v.variants).map((lang) => {
    const data = placeholderData(keys, lang, ctx.services.config.PROGRAMME_NAME);
    const contact = { name: data.name, language: lang, fields: data.fields };
    const text = renderText({ version: v, language: lang, contact, programme: data.programme }).text;
    const sms = renderSms({ type: 'text', text }, lang);
    const m = measureSms(sms);
    const tpl = v.variants[lang].template ? renderContent({ version: v, language: lang, contact, programme: data.programme, policy: 'whatsapp_only', windowOpen: false }) : null;
    return { lang, whatsapp: text, media: v.media, sms, segments: m.segments, encoding: m.encoding, characters: m.characters, template: tpl?.type === 'template' ? tpl : null };
  });
}

export function broadcastsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, p: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, p, data, status);

  // ------------------------------------------------------------------------ key messages
  const messagesPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const offset = Math.max(0, Number(ctx.query.offset) || 0);
    const topic = str(ctx.query.topic).slice(0, 32);
    const state = ['approved', 'review', 'draft'].includes(str(ctx.query.state)) ? (str(ctx.query.state) as 'approved' | 'review' | 'draft') : undefined;
    const search = str(ctx.query.search).slice(0, 100);
    const result = await listMessages(ctx.services.db.knex, { topic: topic || undefined, state, search: search || undefined, limit: PAGE, offset });
    const base: Record<string, string> = {};
    if (topic) base.topic = topic;
    if (state) base.state = state;
    if (search) base.search = search;
    view(ctx, 'messages/index', {
      title: 'nav.messages',
      messages: result.data.map((m) => ({ ...m, state: m.draft?.status ?? (m.approved ? 'approved' : 'draft'), version: m.approved?.version ?? null })),
      pager: pager(ctx, result.total, offset, base),
      topic,
      state,
      search,
      topics: TOPICS,
      ...extra,
    }, status);
  };

  r.get('/messages', needs('messages.write'), h((ctx) => messagesPage(ctx)));

  const newMessagePage = (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) =>
    view(ctx, 'messages/new', { title: 'messages.new', topics: TOPICS, mediaKinds: MEDIA_KINDS, form: { key: '', title: '', topic: 'health', rumour: '', ...versionView(null, formLanguages(ctx)) }, ...extra }, status);

  r.get('/messages/new', needs('messages.write'), h((ctx) => newMessagePage(ctx)));

  r.post('/messages', needs('messages.write'), h(async (ctx) => {
    const b = body(ctx);
    const languages = formLanguages(ctx);
    const res = await attempt(() => createMessage(ctx.services.db, ctx.state.actor!, { key: str(b.key), ...messageForm(b, languages) } as never));
    if (!res.ok) {
      const f = messageForm(b, languages);
      return newMessagePage(ctx, { errors: res.errors, form: { key: str(b.key), title: f.title, topic: f.topic, rumour: f.rumour ?? '', ...formBack(b, languages) } }, res.status);
    }
    flash(ctx, 'flash.saved');
    ctx.redirect(`/messages/${res.value.id}`);
  }));

  const messagePage = async (ctx: Ctx, id: number, extra: Record<string, unknown> = {}, status = 200) => {
    const { knex } = ctx.services.db;
    const m: KeyMessage = await getMessage(knex, id);
    const current = m.draft ?? m.approved;
    const languages = formLanguages(ctx, Object.keys(current?.variants ?? {}));
    const me = await personOf(knex, ctx.state.actor!);
    const perms = ctx.state.permissions ?? [];
    const review = m.draft?.status === 'submitted' ? m.draft : null;
    view(ctx, 'messages/detail', {
      title: 'messages.detail',
      message: m,
      form: { title: m.title, topic: m.topic, rumour: m.rumour ?? '', ...versionView(current, languages) },
      versions: await messageVersions(knex, id),
      renderedApproved: m.approved ? await rendered(ctx, m.approved) : [],
      renderedDraft: m.draft ? await rendered(ctx, m.draft) : [],
      problems: m.draft ? Object.entries(await approvalProblems(knex, m.draft)).map(([k, v]) => ({ field: k, message: v })) : [],
      faq: (await listFaq(knex, { messageId: id, limit: 200 })).data,
      canSubmit: m.draft?.status === 'draft',
      canReview: Boolean(review) && perms.includes('messages.approve'),
      ownReview: Boolean(review) && me !== null && (review!.authorId === me || review!.contributors.includes(me)),
      canBroadcast: Boolean(m.approved) && !m.archivedAt && perms.includes('broadcasts.send'),
      topics: TOPICS,
      mediaKinds: MEDIA_KINDS,
      ...extra,
    }, status);
  };

  r.get('/messages/:id', needs('messages.write'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    if (!Number.isInteger(id) || id <= 0) throw new HttpError(404, 'not_found', 'There is no such key message');
    await messagePage(ctx, id);
  }));

  r.post('/messages/:id', needs('messages.write'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    const b = body(ctx);
    const m = await getMessage(ctx.services.db.knex, id);
    const languages = formLanguages(ctx, Object.keys((m.draft ?? m.approved)?.variants ?? {}));
    const res = await attempt(() => updateMessage(ctx.services.db, ctx.state.actor!, id, messageForm(b, languages) as never));
    if (!res.ok) return messagePage(ctx, id, { errors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(`/messages/${id}`);
  }));

  const action = (path: string, permission: 'messages.write' | 'messages.approve', fn: (ctx: Ctx, id: number) => Promise<unknown>, message: string) => {
    r.post(path, needs(permission), h(async (ctx) => {
      const id = Number(ctx.params.id);
      const res = await attempt(() => fn(ctx, id));
      if (!res.ok) return messagePage(ctx, id, { errors: res.errors }, res.status);
      flash(ctx, message);
      ctx.redirect(`/messages/${id}`);
    }));
  };
  action('/messages/:id/submit', 'messages.write', (ctx, id) => submitMessage(ctx.services.db, ctx.state.actor!, id), 'messages.submitted');
  action('/messages/:id/approve', 'messages.approve', (ctx, id) => approveMessage(ctx.services.db, ctx.state.actor!, id, { version: Number(str(body(ctx).version)) || undefined }), 'messages.approvedFlash');
  action('/messages/:id/reject', 'messages.approve', (ctx, id) => rejectMessage(ctx.services.db, ctx.state.actor!, id, str(body(ctx).note).trim() || '-'), 'messages.rejected');
  action('/messages/:id/archive', 'messages.write', (ctx, id) => updateMessage(ctx.services.db, ctx.state.actor!, id, { archived: str(body(ctx).archived) !== 'false' }), 'flash.saved');

  // ---------------------------------------------------------------------------------- FAQ
  const faqPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const offset = Math.max(0, Number(ctx.query.offset) || 0);
    const { knex } = ctx.services.db;
    const result = await listFaq(knex, { limit: PAGE, offset });
    const messages = (await listMessages(knex, { limit: 200 })).data;
    view(ctx, 'messages/faq', {
      title: 'nav.faq',
      entries: result.data.map((e) => ({ ...e, keywordText: Object.entries(e.keywords).map(([l, w]) => `${l}: ${w.join(', ')}`).join(' · ') })),
      pager: pager(ctx, result.total, offset, {}),
      messages,
      languages: formLanguages(ctx),
      ...extra,
    }, status);
  };

  r.get('/faq', needs('messages.write'), h((ctx) => faqPage(ctx)));

  r.post('/faq', needs('messages.write'), h(async (ctx) => {
    const b = body(ctx);
    const keywords: Record<string, string[]> = {};
    for (const lang of formLanguages(ctx)) {
      const words = str(b[`keywords_${lang}`]).split(/[,\n]/).map((w) => w.trim()).filter(Boolean);
      if (words.length) keywords[lang] = words;
    }
    const res = await attempt(() => createFaq(ctx.services.db, ctx.state.actor!, { messageId: Number(str(b.message_id)), keywords }));
    if (!res.ok) return faqPage(ctx, { errors: res.errors, form: b }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(str(b.back).startsWith('/messages/') ? str(b.back) : '/faq');
  }));

  r.post('/faq/:id', needs('messages.write'), h(async (ctx) => {
    const b = body(ctx);
    const id = Number(ctx.params.id);
    if (str(b.delete) === 'true') await deleteFaq(ctx.services.db, ctx.state.actor!, id);
    else await updateFaq(ctx.services.db, ctx.state.actor!, id, { active: str(b.active) === 'true' });
    flash(ctx, 'flash.saved');
    ctx.redirect(str(b.back).startsWith('/messages/') ? str(b.back) : '/faq');
  }));

  // --------------------------------------------------------------------------- broadcasts
  r.get('/broadcasts', needs('reports.read'), h(async (ctx) => {
    const { knex } = ctx.services.db;
    const offset = Math.max(0, Number(ctx.query.offset) || 0);
    const status = (BROADCAST_STATUSES as readonly string[]).includes(str(ctx.query.status)) ? (str(ctx.query.status) as BroadcastStatus) : undefined;
    const result = await listBroadcasts(knex, { status, limit: PAGE, offset });
    view(ctx, 'broadcasts/index', {
      title: 'nav.broadcasts',
      broadcasts: result.data,
      statuses: BROADCAST_STATUSES,
      status,
      pager: pager(ctx, result.total, offset, status ? { status } : {}),
      canSend: ctx.state.permissions?.includes('broadcasts.send'),
    });
  }));

  const composePage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { knex } = ctx.services.db;
    const q = ctx.services.config.QUIET_HOURS;
    view(ctx, 'broadcasts/new', {
      title: 'broadcasts.new',
      messages: (await listMessages(knex, { state: 'approved', limit: 200 })).data,
      lists: await listLists(knex),
      segments: (await listSegments(knex, { limit: 500 })).data,
      policies: CHANNEL_POLICIES,
      recurrences: RECURRENCES,
      languages: formLanguages(ctx),
      form: { message_id: str(ctx.query.message), channel_policy: 'whatsapp_then_sms', quiet_start: q?.start ?? '20:00', quiet_end: q?.end ?? '08:00', quiet_off: q === null, recurrence: 'none', lists: [] as string[] },
      ...extra,
    }, status);
  };

  r.get('/broadcasts/new', needs('broadcasts.send'), h((ctx) => composePage(ctx)));

  r.post('/broadcasts', needs('broadcasts.send'), h(async (ctx) => {
    const b = body(ctx);
    const footer: Record<string, string> = {};
    for (const lang of formLanguages(ctx)) if (str(b[`footer_${lang}`]).trim()) footer[lang] = str(b[`footer_${lang}`]).trim();
    const input = {
      name: str(b.name),
      messageId: Number(str(b.message_id)) || 0,
      lists: all(b.lists).map(Number).filter((n) => n > 0),
      segmentId: Number(str(b.segment_id)) || null,
      channelPolicy: str(b.channel_policy) as never,
      excludeRecentHours: Number(str(b.exclude_recent_hours)) || null,
      quietHours: str(b.quiet_off) === 'true' ? null : { start: str(b.quiet_start), end: str(b.quiet_end) },
      footer: Object.keys(footer).length ? footer : null,
      recurrence: (str(b.recurrence) || 'none') as never,
    };
    const res = await attempt(() => createBroadcast(ctx.services.db, ctx.services.config, ctx.state.actor!, input));
    if (!res.ok) return composePage(ctx, { errors: res.errors, form: { ...b, lists: all(b.lists), quiet_off: str(b.quiet_off) === 'true' } }, res.status);
    ctx.redirect(`/broadcasts/${res.value.id}/preview`);
  }));

  const previewPage = async (ctx: Ctx, id: number, extra: Record<string, unknown> = {}, status = 200) => {
    const { db, config } = ctx.services;
    const b = await getBroadcast(db.knex, id);
    if (b.status !== 'draft') return ctx.redirect(`/broadcasts/${id}`);
    const p = await previewAndKeep(db, config, id);
    await audit(db, ctx.state.actor!, { action: 'broadcast.preview', entityType: 'broadcast', entityId: id, detail: { recipients: p.recipients, samples: p.samples.length } });
    const tz = config.DEFAULT_TIMEZONE;
    const l = localTime(new Date(Date.now() + 3_600_000), tz);
    const pad = (n: number) => String(n).padStart(2, '0');
    view(ctx, 'broadcasts/preview', {
      title: 'broadcasts.preview',
      broadcast: b,
      preview: p,
      timezone: tz,
      defaultAt: `${l.year}-${pad(l.month)}-${pad(l.day)}T${pad(l.hour)}:00`,
      recurring: b.recurrence !== 'none',
      ...extra,
    }, status);
  };

  r.get('/broadcasts/:id/preview', needs('broadcasts.send'), h((ctx) => previewPage(ctx, Number(ctx.params.id))));

  r.post('/broadcasts/:id/send', needs('broadcasts.send'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    const b = await getBroadcast(ctx.services.db.knex, id);
    const at = str(body(ctx).at).trim();
    const res = await attempt(async () => {
      if (at || b.recurrence !== 'none') {
        let when = new Date();
        if (at) {
          const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(at);
          if (!m) throw new HttpError(400, 'validation_failed', 'The time is not valid', { at: 'must be a date and time such as 2026-12-01T09:00' });
          when = zonedTime(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ctx.services.config.DEFAULT_TIMEZONE);
        }
        return scheduleBroadcast(ctx.services.db, ctx.state.actor!, id, when);
      }
      return sendBroadcast(ctx.services.db, ctx.services.config, ctx.state.actor!, id);
    });
    if (!res.ok) return previewPage(ctx, id, { errors: res.errors }, res.status);
    flash(ctx, at || b.recurrence !== 'none' ? 'broadcasts.scheduledFlash' : 'broadcasts.sentFlash');
    ctx.redirect(`/broadcasts/${id}`);
  }));

  r.get('/broadcasts/:id', needs('reports.read'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    if (!Number.isInteger(id) || id <= 0) throw new HttpError(404, 'not_found', 'There is no such broadcast');
    const { knex } = ctx.services.db;
    const stats = await broadcastStats(knex, id);
    const b = await completeIfDone(knex, await getBroadcast(knex, id), stats);
    const table = (by: Record<string, Record<string, number>>) =>
      Object.entries(by).map(([k, s]) => ({ key: k, total: s.total ?? 0, queued: s.queued ?? 0, held: s.held ?? 0, sent: s.sent ?? 0, delivered: s.delivered ?? 0, read: s.read ?? 0, failed: s.failed ?? 0, skipped: s.skipped ?? 0, cancelled: s.cancelled ?? 0 }));
    const children = b.recurrence !== 'none' && b.parentId === null ? (await listBroadcasts(knex, { parentId: id, limit: 50 })).data : [];
    const perms = ctx.state.permissions ?? [];
    view(ctx, 'broadcasts/detail', {
      title: 'broadcasts.detail',
      broadcast: b,
      stats,
      byChannel: table(stats.byChannel),
      byLanguage: table(stats.byLanguage),
      failedBy: Object.entries(stats.failedBy).map(([k, n]) => ({ key: k, n })),
      skippedBy: Object.entries(stats.skippedBy).map(([k, n]) => ({ key: k, n })),
      children,
      refresh: b.status === 'sending' ? 5 : null,
      canPause: perms.includes('broadcasts.send') && ['sending', 'scheduled', 'recurring'].includes(b.status),
      canResume: perms.includes('broadcasts.send') && b.status === 'paused',
      canCancel: perms.includes('broadcasts.send') && ['draft', 'scheduled', 'recurring', 'sending', 'paused'].includes(b.status),
      canPreview: perms.includes('broadcasts.send') && b.status === 'draft',
    });
  }));

  type Change = (db: Ctx['services']['db'], actor: NonNullable<Ctx['state']['actor']>, id: number) => Promise<unknown>;
  const changes: [string, Change, string][] = [
    ['pause', pauseBroadcast, 'broadcasts.pausedFlash'],
    ['resume', resumeBroadcast, 'broadcasts.resumedFlash'],
    ['cancel', cancelBroadcast, 'broadcasts.cancelledFlash'],
  ];
  for (const [path, fn, msg] of changes) {
    r.post(`/broadcasts/:id/${path}`, needs('broadcasts.send'), h(async (ctx) => {
      const id = Number(ctx.params.id);
      const res = await attempt(() => fn(ctx.services.db, ctx.state.actor!, id));
      flash(ctx, res.ok ? msg : 'broadcasts.notPossible', res.ok ? 'ok' : 'error');
      ctx.redirect(`/broadcasts/${id}`);
    }));
  }

  return r;
}

/** The message form as it was submitted, for re-display after an error. */
function formBack(b: Record<string, unknown>, languages: string[]) {
  return {
    perLanguage: languages.map((lang) => ({
      lang,
      text: str(b[`text_${lang}`]),
      templateName: str(b[`template_name_${lang}`]),
      templateLanguage: str(b[`template_language_${lang}`]),
      templateParams: str(b[`template_params_${lang}`]),
    })),
    mediaKind: str(b.media_kind),
    mediaRef: str(b.media_ref),
    mediaFilename: str(b.media_filename),
  };
}
