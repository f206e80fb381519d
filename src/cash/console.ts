/**
 * Console pages for cash transfers: beneficiary lists (candidates, enrolment, imports, duplicate
 * resolution, exports), distributions (transfers, the provider's report, PDM) and the PDM report.
 * Same services and audit events as the API.
 *
 * File uploads (beneficiary files, provider reports) are multipart forms, which the application's
 * body parser does not read and whose CSRF token it therefore cannot see: they are served by
 * `cashUploads`, routes with their own authentication (the console session) and their own CSRF
 * check (the form's `_csrf` field).
 */
import { timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { authenticate } from '../http/auth.js';
import { HttpError, forbidden } from '../http/errors.js';
import { flash, localeOf, needs, render } from '../console/page.js';
import { Renderer } from '../console/render.js';
import { listSegments } from '../contacts/segments/service.js';
import { LEGAL_BASES } from '../contacts/consent.js';
import { audit } from '../staff/audit.js';
import type { Permission } from '../staff/roles.js';
import { listDuplicates, resolveDuplicate } from './duplicates.js';
import { addEnrolled, createDistribution, getDistribution, importTransfers, listDistributions, listTransfers, updateDistribution, type Distribution } from './distributions.js';
import { parseMappingText } from './files.js';
import { importBeneficiaries, listImports } from './import.js';
import { addCandidates, changeStatus, createList, getList, listBeneficiaries, listLists, previewCandidates, updateList, type CandidateSpec } from './lists.js';
import { BENEFICIARY_STATUSES, EXPORT_PROFILES, MODALITIES, TRANSFER_STATUSES } from './model.js';
import { pdmPlan, startPdmNow } from './pdm.js';
import { followUpList, pdmLabels, pdmReport, type Share, type Tally } from './report.js';
import { parseMultipart, readRawBody } from './upload.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string | string[]>;
const str = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v ?? '').trim();
const PAGE = 50;
const can = (ctx: Ctx, p: Permission) => Boolean(ctx.state.permissions?.includes(p));

async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; errors: Record<string, unknown> }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof HttpError && (e.status === 400 || e.status === 409 || e.status === 413)) return { ok: false, status: e.status, errors: e.details ?? { request: e.message } };
    if (e instanceof Error && e.name === 'ZodError') {
      const issues = (e as unknown as { issues: { path: (string | number)[]; message: string }[] }).issues;
      return { ok: false, status: 400, errors: Object.fromEntries(issues.map((i) => [i.path.join('.') || 'form', i.message])) };
    }
    throw e;
  }
}

const idOf = (ctx: Ctx, name = 'id') => {
  const n = Number(ctx.params[name]);
  if (!Number.isInteger(n) || n <= 0) throw new HttpError(404, 'not_found', 'Nothing is here');
  return n;
};

const numOrUndef = (s: string) => (s === '' ? undefined : Number(s));

/** The renderer the console uses, for the upload routes (built by cashConsole; one is made if needed). */
let sharedRenderer: Renderer | null = null;

function distributionView(d: Distribution) {
  return { ...d, paidShare: d.transfers.total ? Math.round((d.transfers.paid / d.transfers.total) * 100) : 0 };
}

function pdmForm(b: Record<string, string | string[]>) {
  return {
    enabled: str(b.pdm_enabled) !== 'false',
    days: numOrUndef(str(b.pdm_days)),
    sampling: (str(b.pdm_sampling) === 'all' ? 'all' : 'sample') as 'all' | 'sample',
    confidence: numOrUndef(str(b.pdm_confidence)),
    margin: numOrUndef(str(b.pdm_margin)),
  };
}

export function cashConsole(renderer: Renderer): Router<AppState> {
  sharedRenderer = renderer;
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);

  // ------------------------------------------------------------------------------------ index
  const indexPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const manage = can(ctx, 'cash.manage');
    const { knex } = ctx.services.db;
    const before = Number(ctx.query.before) || undefined;
    const dists = await listDistributions(knex, { before, limit: PAGE });
    view(ctx, 'cash/index', {
      title: 'nav.cash',
      manage,
      lists: manage ? await listLists(knex) : [],
      distributions: dists.data.map(distributionView),
      next: dists.next,
      modalities: MODALITIES,
      defaults: { days: ctx.services.config.CASH_PDM_DAYS, confidence: ctx.services.config.CASH_PDM_CONFIDENCE, margin: ctx.services.config.CASH_PDM_MARGIN, currency: ctx.services.config.PRICE_CURRENCY },
      ...extra,
    }, status);
  };
  r.get('/cash', needs('reports.read'), h((ctx) => indexPage(ctx)));

  r.post('/cash/lists', needs('cash.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() => createList(ctx.services.db, ctx.state.actor!, { name: str(b.name), description: str(b.description) || null }));
    if (!res.ok) return indexPage(ctx, { listForm: b, listErrors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(`/cash/lists/${res.value.id}`);
  }));

  r.post('/cash/distributions', needs('cash.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() =>
      createDistribution(ctx.services.db, ctx.state.actor!, {
        listId: Number(str(b.list_id)), name: str(b.name), date: str(b.date), amount: Number(str(b.amount).replace(',', '.')), currency: str(b.currency),
        modality: str(b.modality) as (typeof MODALITIES)[number], provider: str(b.provider) || null, pdm: pdmForm(b),
      }),
    );
    if (!res.ok) return indexPage(ctx, { distForm: b, distErrors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(`/cash/distributions/${res.value.id}`);
  }));

  // ------------------------------------------------------------------------------------ a list
  const listPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const id = idOf(ctx);
    const { knex } = ctx.services.db;
    const list = await getList(knex, id);
    const statusFilter = typeof ctx.query.status === 'string' && (BENEFICIARY_STATUSES as readonly string[]).includes(ctx.query.status) ? (ctx.query.status as (typeof BENEFICIARY_STATUSES)[number]) : undefined;
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.slice(0, 100) : '';
    const dupOnly = ctx.query.duplicates === 'true';
    const before = Number(ctx.query.before) || undefined;
    const page = await listBeneficiaries(knex, id, { status: statusFilter, q, duplicates: dupOnly, before, limit: PAGE });
    await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.beneficiaries.read', entityType: 'cash_list', entityId: id, detail: { results: page.data.length, searched: Boolean(q) } });
    const nextQuery = page.next ? new URLSearchParams({ ...(statusFilter ? { status: statusFilter } : {}), ...(q ? { q } : {}), ...(dupOnly ? { duplicates: 'true' } : {}), before: String(page.next) }).toString() : null;
    const segments = (await listSegments(knex, { limit: 200 })).data;
    const dists = (await listDistributions(knex, { listId: id, limit: 50 })).data;
    view(ctx, 'cash/list', {
      title: 'cash.list.title',
      list,
      beneficiaries: page.data.map((b) => ({ ...b, hasDuplicate: b.openDuplicates.length > 0 })),
      statuses: BENEFICIARY_STATUSES,
      status: statusFilter,
      q,
      dupOnly,
      nextQuery,
      segments,
      distributions: dists,
      profiles: EXPORT_PROFILES.map((p) => ({ key: p.key, label: p.label[localeOf(ctx)], fields: p.fields.join(', ') })),
      imports: await listImports(knex, { listId: id }, 5),
      ...extra,
    }, status);
  };
  r.get('/cash/lists/:id', needs('cash.manage'), h((ctx) => listPage(ctx)));

  r.post('/cash/lists/:id', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const b = body(ctx);
    const res = await attempt(() => updateList(ctx.services.db, ctx.state.actor!, id, { name: str(b.name), description: str(b.description) || null, archived: str(b.archived) === 'true' }));
    if (!res.ok) return listPage(ctx, { listErrors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(`/cash/lists/${id}`);
  }));

  r.post('/cash/lists/:id/status', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const b = body(ctx);
    const ids = (Array.isArray(b.ids) ? b.ids : b.ids ? [b.ids] : []).map(Number).filter((n) => Number.isInteger(n) && n > 0);
    const from = str(b.from);
    const res = await attempt(() =>
      changeStatus(ctx.services.db, ctx.state.actor!, id, {
        status: str(b.status) as 'enrolled' | 'excluded' | 'candidate',
        ...(from ? { from: from as (typeof BENEFICIARY_STATUSES)[number] } : { ids }),
        reason: str(b.reason) || undefined,
      }),
    );
    if (!res.ok) return listPage(ctx, { statusErrors: res.errors }, res.status);
    return listPage(ctx, { statusResult: res.value });
  }));

  const specOf = (b: Record<string, string | string[]>): CandidateSpec => {
    const spec: CandidateSpec = {};
    if (str(b.segment)) spec.segment = Number(str(b.segment));
    if (str(b.query)) spec.query = str(b.query);
    if (str(b.survey_key) || str(b.survey_question) || str(b.survey_choices)) {
      spec.survey = { key: str(b.survey_key), question: str(b.survey_question), choices: str(b.survey_choices).split(/[,\s]+/).filter(Boolean) };
    }
    return spec;
  };
  r.post('/cash/lists/:id/candidates', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const b = body(ctx);
    const spec = specOf(b);
    if (str(b.confirm) !== 'true') {
      const res = await attempt(() => previewCandidates(ctx.services.db.knex, id, spec));
      if (!res.ok) return listPage(ctx, { candidateForm: b, candidateErrors: res.errors }, res.status);
      return listPage(ctx, { candidateForm: b, preview: res.value });
    }
    const res = await attempt(() => addCandidates(ctx.services.db, ctx.state.actor!, id, spec));
    if (!res.ok) return listPage(ctx, { candidateForm: b, candidateErrors: res.errors }, res.status);
    return listPage(ctx, { added: res.value });
  }));

  // ------------------------------------------------------------------------------- duplicates
  const duplicatesPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const id = idOf(ctx);
    const { knex } = ctx.services.db;
    const list = await getList(knex, id);
    const resolved = ctx.query.status === 'resolved';
    const before = Number(ctx.query.before) || undefined;
    const page = await listDuplicates(knex, id, { status: resolved ? 'resolved' : 'open', before, limit: PAGE });
    await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.duplicates.read', entityType: 'cash_list', entityId: id, detail: { results: page.data.length } });
    view(ctx, 'cash/duplicates', {
      title: 'cash.dup.title', list, duplicates: page.data, resolved, open: page.open,
      nextQuery: page.next ? new URLSearchParams({ ...(resolved ? { status: 'resolved' } : {}), before: String(page.next) }).toString() : null,
      ...extra,
    }, status);
  };
  r.get('/cash/lists/:id/duplicates', needs('cash.manage'), h((ctx) => duplicatesPage(ctx)));
  r.post('/cash/duplicates/:id/resolve', needs('cash.manage'), h(async (ctx) => {
    const dupId = idOf(ctx);
    const b = body(ctx);
    const [action, keep] = str(b.decision).split(':');
    const res = await attempt(() => resolveDuplicate(ctx.services.db, ctx.state.actor!, dupId, { action: action as 'keep_one', keep: keep ? Number(keep) : undefined, reason: str(b.reason) || undefined }));
    const listId = Number(str(b.list_id));
    if (!res.ok) {
      ctx.params.id = String(listId);
      return duplicatesPage(ctx, { errors: res.errors }, res.status);
    }
    flash(ctx, 'cash.dup.resolved');
    ctx.redirect(`/cash/lists/${res.value.listId}/duplicates`);
  }));

  // --------------------------------------------------------------------------------- imports
  r.get('/cash/lists/:id/import', needs('cash.manage'), h(async (ctx) => {
    const list = await getList(ctx.services.db.knex, idOf(ctx));
    view(ctx, 'cash/import', { title: 'cash.import.title', list, bases: LEGAL_BASES, form: { dry_run: 'true', basis: 'consent' }, imports: await listImports(ctx.services.db.knex, { listId: list.id }, 10) });
  }));

  // ---------------------------------------------------------------------------- distribution
  const distributionPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const id = idOf(ctx);
    const { knex } = ctx.services.db;
    const d = await getDistribution(knex, id);
    const manage = can(ctx, 'cash.manage');
    let transfers = null;
    let nextQuery = null;
    let plan = null;
    let followUp = null;
    const tStatus = typeof ctx.query.status === 'string' && (TRANSFER_STATUSES as readonly string[]).includes(ctx.query.status) ? (ctx.query.status as (typeof TRANSFER_STATUSES)[number]) : undefined;
    if (manage) {
      const before = Number(ctx.query.before) || undefined;
      const t = await listTransfers(knex, id, { status: tStatus, before, limit: PAGE });
      transfers = t.data;
      nextQuery = t.next ? new URLSearchParams({ ...(tStatus ? { status: tStatus } : {}), before: String(t.next) }).toString() : null;
      plan = await pdmPlan(knex, ctx.services.config, id);
      followUp = await followUpList(knex, id, { sensitive: can(ctx, 'complaints.sensitive') });
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.transfers.read', entityType: 'cash_distribution', entityId: id, detail: { results: transfers.length, followUp: followUp.length } });
    }
    view(ctx, 'cash/distribution', {
      title: 'cash.dist.title', d: distributionView(d), manage, transfers, nextQuery, plan, followUp, transferStatuses: TRANSFER_STATUSES, tStatus,
      imports: manage ? await listImports(knex, { distributionId: id }, 5) : [], canStart: manage && d.pdm.status === 'pending', form: { dry_run: 'true' }, ...extra,
    }, status);
  };
  r.get('/cash/distributions/:id', needs('reports.read'), h((ctx) => distributionPage(ctx)));

  r.post('/cash/distributions/:id', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const b = body(ctx);
    const res = await attempt(() => updateDistribution(ctx.services.db, ctx.state.actor!, id, { name: str(b.name) || undefined, date: str(b.date) || undefined, provider: str(b.provider) || null, pdm: pdmForm(b) }));
    if (!res.ok) return distributionPage(ctx, { editErrors: res.errors }, res.status);
    flash(ctx, 'flash.saved');
    ctx.redirect(`/cash/distributions/${id}`);
  }));
  r.post('/cash/distributions/:id/sync', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const added = await addEnrolled(ctx.services.db.knex, id);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.transfers.sync', entityType: 'cash_distribution', entityId: id, detail: { added } });
    flash(ctx, 'cash.dist.synced');
    ctx.redirect(`/cash/distributions/${id}`);
  }));
  r.post('/cash/distributions/:id/pdm/start', needs('cash.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const res = await attempt(() => startPdmNow(ctx.services, id));
    if (!res.ok) return distributionPage(ctx, { pdmErrors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.pdm.start', entityType: 'cash_distribution', entityId: id, detail: { sent: res.value.sent, skipped: res.value.skipped } });
    flash(ctx, 'cash.pdm.started');
    ctx.redirect(`/cash/distributions/${id}`);
  }));

  // ---------------------------------------------------------------------------------- report
  r.get('/cash/distributions/:id/report', needs('reports.read'), h(async (ctx) => {
    const id = idOf(ctx);
    const report = await pdmReport(ctx.services.db.knex, ctx.services.config, id);
    const lang = localeOf(ctx);
    const L = await pdmLabels(lang);
    const rows = (question: string, list: Tally[]) => list.map((t) => ({ ...t, label: question === 'rcsi' ? t.key : L.choice(question, t.key) }));
    // Drawn by /static/survey-charts.js with chart.js (served by the surveys domain); the table holds the same numbers.
    const table = (key: string, question: string, list: Tally[]) => {
      const r = rows(question, list);
      const title = renderer.t(lang, `cash.table.${key}`);
      return { key, rows: r, title, chart: i.respondents ? JSON.stringify({ title, labels: r.map((x) => x.label), counts: r.map((x) => x.count) }) : null };
    };
    const i = report.indicators;
    const shareRow = (key: string, s: Share) => ({ key, ...s });
    view(ctx, 'cash/report', {
      title: 'cash.report.title',
      report,
      headline: [
        shareRow('received', i.received), shareRow('fullAmount', i.fullAmount), shareRow('onTime', i.onTime), shareRow('anyProblem', i.anyProblem),
        shareRow('askedToPay', i.askedToPay), shareRow('feltSafe', i.feltSafe), shareRow('respected', i.respected), shareRow('needsMet', i.needsMetAllOrMost),
        shareRow('satisfied', i.satisfied), shareRow('knowsComplaint', i.knowsComplaint),
      ],
      tables: [
        table('received', 'received', i.receivedBreakdown),
        table('problems', 'problems', i.problems),
        table('spending', 'spending', i.spending),
        table('needsMet', 'needs_met', i.needsMet),
        table('satisfaction', 'satisfaction', i.satisfaction),
        table('modality', 'preferred_modality', i.preferredModality),
        table('rcsiBands', 'rcsi', i.rcsi.bands),
      ],
      groups: [
        { key: 'gender', rows: report.disaggregation.gender },
        { key: 'ageGroup', rows: report.disaggregation.ageGroup },
        { key: 'admin1', rows: report.disaggregation.admin1 },
      ],
    });
  }));

  return r;
}

// ---------------------------------------------------------------------------------- uploads

function checkCsrf(ctx: Ctx, sent: string | undefined): void {
  const expected = ctx.state.session?.csrfToken;
  const a = Buffer.from(expected ?? '');
  const b = Buffer.from(sent ?? '');
  if (!expected || a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new HttpError(403, 'csrf_failed', 'The form has expired or did not come from this site; reload the page and try again');
  }
}

/** Upload routes: a signed-in console user with cash.manage (checked before the body is read). */
function requireUploader(ctx: Ctx): void {
  ctx.state.html = true;
  if (!ctx.state.session) throw new HttpError(401, 'unauthorized', 'Sign in to the console first');
  if (!ctx.state.permissions?.includes('cash.manage')) throw forbidden();
}

/** Reads a console upload form: CSRF from the form, the file and the fields. */
async function uploadForm(ctx: Ctx): Promise<{ fields: Record<string, string>; file: { filename: string; data: Buffer } | null }> {
  const raw = await readRawBody(ctx.req);
  const form = parseMultipart(raw, ctx.get('content-type'));
  checkCsrf(ctx, form.fields._csrf);
  const f = form.files.find((x) => x.field === 'file' && x.filename !== '' && x.data.length > 0);
  return { fields: form.fields, file: f ? { filename: f.filename, data: f.data } : null };
}

/** The multipart upload routes (see the module comment): `open` routes with their own authentication. */
export function cashUploads(): Router<AppState> {
  const r = new Router<AppState>();
  const renderer = () => (sharedRenderer ??= new Renderer());

  r.post('/cash/lists/:id/import', authenticate() as never, h(async (ctx) => {
    requireUploader(ctx);
    const id = idOf(ctx);
    const list = await getList(ctx.services.db.knex, id);
    const { fields, file } = await uploadForm(ctx);
    const page = (data: Record<string, unknown>, status = 200) =>
      render(ctx, renderer(), 'cash/import', { title: 'cash.import.title', list, bases: LEGAL_BASES, form: fields, imports: [], ...data }, status);
    if (!file) return page({ errors: { file: 'choose a CSV or XLSX file' } }, 400);
    const res = await attempt(async () =>
      importBeneficiaries(ctx.services, ctx.state.actor!, {
        listId: id, fileName: file.filename, content: new Uint8Array(file.data), dryRun: fields.dry_run === 'true', skipBadRows: fields.skip_bad_rows === 'true',
        enrol: fields.enrol === 'true', basis: (fields.basis || 'consent') as (typeof LEGAL_BASES)[number], evidence: fields.evidence ?? '',
        mapping: fields.mapping?.trim() ? parseMappingText(fields.mapping) : undefined,
      }),
    );
    if (!res.ok) return page({ errors: res.errors }, res.status);
    return page({ report: res.value, committed: res.value.status === 'committed', failed: res.value.status === 'failed' });
  }));

  r.post('/cash/distributions/:id/transfers/import', authenticate() as never, h(async (ctx) => {
    requireUploader(ctx);
    const id = idOf(ctx);
    const d = await getDistribution(ctx.services.db.knex, id);
    const { fields, file } = await uploadForm(ctx);
    const page = (data: Record<string, unknown>, status = 200) =>
      render(ctx, renderer(), 'cash/transfers-import', { title: 'cash.tx.title', d, form: fields, ...data }, status);
    if (!file) return page({ errors: { file: 'choose a CSV or XLSX file' } }, 400);
    const res = await attempt(async () =>
      importTransfers(ctx.services, ctx.state.actor!, {
        distributionId: id, fileName: file.filename, content: new Uint8Array(file.data), dryRun: fields.dry_run === 'true', skipBadRows: fields.skip_bad_rows === 'true',
        key: fields.key === 'phone' ? 'phone' : fields.key === 'household_id' ? 'household_id' : undefined,
        mapping: fields.mapping?.trim() ? parseMappingText(fields.mapping) : undefined,
      }),
    );
    if (!res.ok) return page({ errors: res.errors }, res.status);
    return page({ report: res.value, committed: res.value.status === 'committed', failed: res.value.status === 'failed' });
  }));
  return r;
}
