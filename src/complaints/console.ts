/**
 * Console pages: the complaints inbox (filters, search, SLA badges, pagination, CSV export), the case
 * page (narrative, history, status, assignment, priority, category, sensitivity, notes, referrals,
 * access log), hotline entry, the referral directory and referral records, and psychosocial triage
 * (focal points only). The same services and audit events as the API; a sensitive case is a 404
 * page for everyone but focal points, like a code nobody used.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { usingDevelopmentKey } from './crypto.js';
import { enterComplaint } from './entry.js';
import { openIntakes } from './intake.js';
import { CATEGORIES, PRIORITIES, SENSITIVE_CATEGORIES, SOURCES, STATUSES, slaFromConfig, type Priority } from './model.js';
import { PSS_LEVELS, closeHandoff, followupDone, listTriage, pssAlerts, setTriage, suggestionFor } from './pss.js';
import { OUTCOMES, createService, getService, listReferrals, listServices, referComplaint, updateReferral, updateService, type Outcome } from './referrals.js';
import {
  addNote, assignComplaint, assignableStaff, caseAccessLog, changeStatus, complaintStats, exportComplaintsCsv, getComplaint, listComplaints, listQuerySchema,
  seesSensitive, setCategory, setPriority, setSensitive, type Viewer,
} from './service.js';
import type { Category } from './model.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string>;
const viewer = (ctx: Ctx): Viewer => ({ actor: ctx.state.actor!, permissions: ctx.state.permissions ?? [] });
const can = (ctx: Ctx, p: string) => (ctx.state.permissions ?? []).includes(p as never);

/** Runs fn; a validation or conflict error comes back as field errors for the form. */
async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; errors: Record<string, unknown> }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof HttpError && (e.status === 400 || e.status === 409)) return { ok: false, status: e.status, errors: e.details ?? { request: e.message } };
    throw e;
  }
}

function query(ctx: Ctx): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.query)) if (typeof v === 'string' && v !== '') out[k] = v;
  return out;
}

export function complaintsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);

  /** What every complaints page shows at the top: the development-key warning and urgent PSS items, for focal points. */
  const banners = async (ctx: Ctx) => {
    if (!seesSensitive(viewer(ctx))) return {};
    return { devKey: usingDevelopmentKey(), pss: await pssAlerts(ctx.services.db.knex) };
  };

  // ------------------------------------------------------------------------------------ inbox
  r.get('/complaints', needs('complaints.read'), h(async (ctx) => {
    const raw = query(ctx);
    const parsed = listQuerySchema.safeParse(raw);
    const filters = parsed.success ? parsed.data : listQuerySchema.parse({});
    const now = new Date();
    const { db, config } = ctx.services;
    const page = await listComplaints(db, viewer(ctx), filters, now, slaFromConfig(config));
    const stats = can(ctx, 'reports.read') ? await complaintStats(db.knex, viewer(ctx), now) : null;
    const { cursor: _c, ...kept } = raw;
    const { limit: _l, ...exported } = kept;
    const qs = (extra: Record<string, string>) => new URLSearchParams({ ...kept, ...extra }).toString();
    view(ctx, 'complaints/index', {
      title: 'nav.complaints',
      rows: page.data,
      nextQuery: page.next ? qs({ cursor: page.next }) : null,
      exportQuery: new URLSearchParams(exported).toString(),
      f: raw,
      errors: parsed.success ? null : Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])),
      statuses: STATUSES, categories: CATEGORIES, priorities: PRIORITIES, sources: SOURCES, sensitiveCategories: [...SENSITIVE_CATEGORIES],
      focal: seesSensitive(viewer(ctx)),
      stats,
      intakes: await openIntakes(db.knex, now),
      canManage: can(ctx, 'complaints.manage'),
      ...(await banners(ctx)),
    });
  }));

  r.get('/complaints/export.csv', needs('complaints.read'), h(async (ctx) => {
    const parsed = listQuerySchema.safeParse(query(ctx));
    if (!parsed.success) throw new HttpError(400, 'validation_failed', 'The filters are not valid', Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])));
    const { cursor: _c, limit: _l, ...filters } = parsed.data;
    const { csv } = await exportComplaintsCsv(ctx.services.db, viewer(ctx), filters, new Date(), slaFromConfig(ctx.services.config));
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Content-Disposition', `attachment; filename="complaints-${new Date().toISOString().slice(0, 10)}.csv"`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = csv;
  }));

  // ------------------------------------------------------------------------------------ hotline entry
  const newPage = (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) =>
    view(ctx, 'complaints/new', { title: 'complaints.new', categories: CATEGORIES, priorities: PRIORITIES, form: { source: 'phone', medium: 'sms' }, ...extra }, status);

  r.get('/complaints/new', needs('complaints.manage'), h((ctx) => newPage(ctx)));

  r.post('/complaints', needs('complaints.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() =>
      enterComplaint(ctx.services.db, ctx.services.config, viewer(ctx), {
        source: (b.source || 'phone') as 'phone',
        category: b.category as Category,
        narrative: b.narrative ?? '',
        anonymous: b.anonymous === 'yes',
        phone: b.anonymous === 'yes' ? undefined : b.phone || undefined,
        medium: b.medium === 'whatsapp' ? 'whatsapp' : 'sms',
        name: b.anonymous === 'yes' ? undefined : b.name || undefined,
        wantsAnswer: b.wants_answer === 'yes',
        replyMedium: b.reply_medium === 'whatsapp' ? 'whatsapp' : b.reply_medium === 'sms' ? 'sms' : undefined,
        followupConsent: b.followup_consent === 'yes',
        language: b.language || undefined,
        priority: (PRIORITIES as readonly string[]).includes(b.priority) ? (b.priority as Priority) : undefined,
        sensitive: b.sensitive === 'yes',
      }),
    );
    if (!res.ok) return newPage(ctx, { form: b, errors: res.errors }, res.status);
    flash(ctx, 'complaints.created');
    // A non-focal operator who filed a sensitive case cannot open it: back to the inbox, with its code.
    if (res.value.sensitive && !seesSensitive(viewer(ctx))) return newPage(ctx, { created: res.value.code, sensitiveCreated: true }, 201);
    ctx.redirect(`/complaints/${res.value.code}`);
  }));

  // ------------------------------------------------------------------------------------ the case
  const casePage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { db } = ctx.services;
    const c = await getComplaint(db, viewer(ctx), ctx.params.code);
    const referrals = (await listReferrals(db, viewer(ctx), { complaintCode: c.code, limit: 200 })).data;
    view(ctx, 'complaints/detail', {
      title: 'complaints.case',
      c,
      categoryIsSensitive: SENSITIVE_CATEGORIES.has(c.category),
      focal: seesSensitive(viewer(ctx)),
      canManage: can(ctx, 'complaints.manage') && c.status !== 'closed',
      canSeeContact: can(ctx, 'contacts.read') && c.contactId !== null,
      statuses: STATUSES, priorities: PRIORITIES, categories: CATEGORIES,
      staff: await assignableStaff(db.knex, c.sensitive),
      services: await listServices(db.knex, { active: true }),
      referrals,
      access: await caseAccessLog(db, viewer(ctx), c.code),
      outcomes: OUTCOMES,
      ...(await banners(ctx)),
      ...extra,
    }, status);
  };

  r.get('/complaints/:code', needs('complaints.read'), h((ctx) => casePage(ctx)));

  /** Runs a change on the case; on a validation error shows the case page with the errors. */
  const change = (perm: 'complaints.manage', fn: (ctx: Ctx, b: Record<string, string>) => Promise<{ gone?: boolean } | void>) =>
    [needs(perm), h(async (ctx: Ctx) => {
      const res = await attempt(() => fn(ctx, body(ctx)));
      if (!res.ok) return casePage(ctx, { errors: res.errors }, res.status);
      flash(ctx, res.value && res.value.gone ? 'complaints.nowSensitive' : 'flash.saved');
      ctx.redirect(res.value && res.value.gone ? '/complaints' : `/complaints/${ctx.params.code.toUpperCase()}`);
    })] as const;

  const opts = (ctx: Ctx) => ({ programme: ctx.services.config.PROGRAMME_NAME, defaultLanguage: ctx.services.config.DEFAULT_LANGUAGE });

  r.post('/complaints/:code/status', ...change('complaints.manage', async (ctx, b) => {
    await changeStatus(ctx.services.db, viewer(ctx), ctx.params.code, { status: b.status as never, note: b.note || undefined, resolution: b.resolution || undefined }, opts(ctx));
  }));
  r.post('/complaints/:code/assign', ...change('complaints.manage', async (ctx, b) => {
    const id = b.assignee_id ? Number(b.assignee_id) : null;
    if (id !== null && !Number.isInteger(id)) throw new HttpError(400, 'validation_failed', 'Not valid', { assigneeId: 'choose a staff user' });
    await assignComplaint(ctx.services.db, viewer(ctx), ctx.params.code, id);
  }));
  r.post('/complaints/:code/priority', ...change('complaints.manage', async (ctx, b) => {
    if (!(PRIORITIES as readonly string[]).includes(b.priority)) throw new HttpError(400, 'validation_failed', 'Not valid', { priority: `must be one of ${PRIORITIES.join(', ')}` });
    await setPriority(ctx.services.db, viewer(ctx), ctx.params.code, b.priority as Priority, slaFromConfig(ctx.services.config));
  }));
  r.post('/complaints/:code/category', ...change('complaints.manage', async (ctx, b) => {
    if (!(CATEGORIES as readonly string[]).includes(b.category)) throw new HttpError(400, 'validation_failed', 'Not valid', { category: 'choose a category' });
    const res = await setCategory(ctx.services.db, viewer(ctx), ctx.params.code, b.category as Category);
    return { gone: !res.visible };
  }));
  r.post('/complaints/:code/sensitive', ...change('complaints.manage', async (ctx, b) => {
    const res = await setSensitive(ctx.services.db, viewer(ctx), ctx.params.code, b.sensitive === 'true');
    return { gone: !res.visible };
  }));
  r.post('/complaints/:code/notes', ...change('complaints.manage', async (ctx, b) => {
    await addNote(ctx.services.db, viewer(ctx), ctx.params.code, b.note ?? '');
  }));
  r.post('/complaints/:code/referrals', ...change('complaints.manage', async (ctx, b) => {
    await referComplaint(ctx.services.db, viewer(ctx), ctx.params.code, {
      serviceId: Number(b.service_id) as number,
      consent: (b.consent === 'yes') as true,
      consentMethod: (b.consent_method || 'operator') as 'operator',
      dueDays: b.due_days ? Number(b.due_days) : undefined,
      note: b.note || undefined,
    });
  }));

  // ------------------------------------------------------------------------------------ referrals
  r.get('/referrals', needs('complaints.read'), h(async (ctx) => {
    const outcome = (OUTCOMES as readonly string[]).includes(String(ctx.query.outcome)) ? (ctx.query.outcome as Outcome) : undefined;
    const before = typeof ctx.query.before === 'string' && /^\d+_[a-f0-9]{12}$/.test(ctx.query.before) ? ctx.query.before : undefined;
    const page = await listReferrals(ctx.services.db, viewer(ctx), { outcome, before, limit: 50 });
    const nextQuery = page.next ? new URLSearchParams({ ...(outcome ? { outcome } : {}), before: page.next }).toString() : null;
    view(ctx, 'complaints/referrals', { title: 'nav.referrals', rows: page.data, outcomes: OUTCOMES, outcome, nextQuery, canManage: can(ctx, 'complaints.manage'), ...(await banners(ctx)) });
  }));

  r.post('/referrals/:id', needs('complaints.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() => updateReferral(ctx.services.db, viewer(ctx), ctx.params.id, { outcome: b.outcome as Outcome, note: b.note || undefined }));
    if (!res.ok) throw new HttpError(res.status, 'validation_failed', 'The outcome is not valid', res.errors);
    flash(ctx, 'flash.saved');
    ctx.redirect(typeof b.back === 'string' && /^\/(complaints\/[A-Z0-9]{6}|referrals|pss)$/.test(b.back) ? b.back : '/referrals');
  }));

  const servicesPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.slice(0, 100) : '';
    view(ctx, 'complaints/services', { title: 'nav.referralServices', services: await listServices(ctx.services.db.knex, { q: q || undefined }), q, canManage: can(ctx, 'complaints.manage'), form: {}, ...extra }, status);
  };
  const serviceForm = (b: Record<string, string>) => ({
    organisation: b.organisation ?? '', name: b.name ?? '', description: b.description, eligibility: b.eligibility, languages: b.languages, hours: b.hours,
    contact: b.contact, area: b.area, kinds: b.kinds, active: b.active === undefined ? undefined : b.active === 'true',
  });

  r.get('/referral-services', needs('complaints.read'), h((ctx) => servicesPage(ctx)));
  r.post('/referral-services', needs('complaints.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() => createService(ctx.services.db, ctx.state.actor!, serviceForm(b)));
    if (!res.ok) return servicesPage(ctx, { form: b, errors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect('/referral-services');
  }));
  r.get('/referral-services/:id', needs('complaints.read'), h(async (ctx) => {
    const s = await getService(ctx.services.db.knex, Number(ctx.params.id) || 0);
    view(ctx, 'complaints/service', { title: 'nav.referralServices', s, canManage: can(ctx, 'complaints.manage') });
  }));
  r.post('/referral-services/:id', needs('complaints.manage'), h(async (ctx) => {
    const id = Number(ctx.params.id) || 0;
    const b = body(ctx);
    const res = await attempt(() => updateService(ctx.services.db, ctx.state.actor!, id, serviceForm(b)));
    if (!res.ok) {
      const s = await getService(ctx.services.db.knex, id);
      return view(ctx, 'complaints/service', { title: 'nav.referralServices', s: { ...s, ...b }, canManage: true, errors: res.errors }, res.status);
    }
    flash(ctx, 'flash.saved');
    ctx.redirect(`/referral-services/${id}`);
  }));

  // ------------------------------------------------------------------------------------ triage (focal points)
  const pssPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const { db } = ctx.services;
    const contactId = Number(ctx.query.contact) || undefined;
    const open = ctx.query.open === 'true';
    const records = await listTriage(db, viewer(ctx), { contactId, open, limit: 100 });
    const suggestion = contactId ? await suggestionFor(db.knex, contactId) : null;
    view(ctx, 'complaints/pss', {
      title: 'nav.pss', records, contactId, open, suggestion, levels: PSS_LEVELS, services: await listServices(db.knex, { active: true }),
      noNumbers: !ctx.services.config.PSS_EMERGENCY_NUMBERS, numbers: ctx.services.config.PSS_EMERGENCY_NUMBERS,
      form: { contact_id: contactId ? String(contactId) : '' }, ...(await banners(ctx)), ...extra,
    }, status);
  };

  r.get('/pss', needs('complaints.sensitive'), h((ctx) => pssPage(ctx)));
  r.post('/pss', needs('complaints.sensitive'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() =>
      setTriage(ctx.services.db, ctx.services.config, viewer(ctx), {
        contactId: Number(b.contact_id),
        level: b.level as 'green',
        note: b.note || undefined,
        followupDays: b.followup_days ? Number(b.followup_days) : undefined,
        serviceId: b.service_id ? Number(b.service_id) : undefined,
        referralConsent: b.referral_consent === 'yes',
        sendMessage: b.send_message !== 'no',
      }),
    );
    if (!res.ok) return pssPage(ctx, { form: b, errors: res.errors }, res.status);
    flash(ctx, res.value.warning ?? 'pss.saved', res.value.warning ? 'error' : 'ok');
    ctx.redirect(`/pss?contact=${Number(b.contact_id)}`);
  }));
  r.post('/pss/:id/close-handoff', needs('complaints.sensitive'), h(async (ctx) => {
    await closeHandoff(ctx.services.db, viewer(ctx), ctx.params.id);
    flash(ctx, 'flash.saved');
    ctx.redirect('/pss?open=true');
  }));
  r.post('/pss/:id/followup-done', needs('complaints.sensitive'), h(async (ctx) => {
    await followupDone(ctx.services.db, viewer(ctx), ctx.params.id);
    flash(ctx, 'flash.saved');
    ctx.redirect('/pss?open=true');
  }));

  return r;
}
