/**
 * Console pages of the reports domain (permission reports.read; aggregates only):
 *   /dashboard                  the period's figures as tables with charts beside them (from/to, test contacts)
 *   /reports/weekly             the weekly situation report, printable; ?week=YYYY-MM-DD (any day of the week)
 *   /reports/weekly.csv|.xlsx   the same as a download
 *   /reports/weekly/snapshots   POST: build and store a week's report (settings.manage); the weekly job does it on Mondays
 *   /reports/snapshots/:id      a stored report as it was built
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError, notFound } from '../http/errors.js';
import { flash, localeOf, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { audit } from '../staff/audit.js';
import { SLA_STATES } from '../complaints/stats.js';
import { dashboardFigures, type DashboardFigures } from './dashboard.js';
import { addDays, isDate, lastCompleteWeek, localDate, periodFrom, weekOf } from './period.js';
import { weeklyReport, type WeeklyReport } from './weekly.js';
import { weeklyCsv, weeklyXlsx } from './export.js';
import { getSnapshot, listSnapshots, storeWeeklySnapshot } from './snapshots.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const str = (v: unknown) => (typeof v === 'string' ? v : Array.isArray(v) ? String(v[0] ?? '') : '');

/** A chart for static/dashboard-charts.js (read from the canvas's data-chart attribute). */
interface Chart {
  type: 'bar' | 'line' | 'doughnut';
  labels: string[];
  datasets: { label: string; data: number[] }[];
  horizontal?: boolean;
  stacked?: boolean;
}
const chart = (c: Chart) => JSON.stringify(c);

/** A percentage for a table cell: "97.5 %", or a dash when there is nothing to divide. */
export const pctText = (v: number | null) => (v === null ? '—' : `${v} %`);

/** Channel names as people know them. */
const channelKey = (ch: string) => `channel.${ch}`;

function dashboardView(d: DashboardFigures, t: (k: string) => string) {
  const dayLabels = d.period.days.map((x) => x.slice(5));
  const daily = d.period.days.map((day, i) => ({ day, received: d.inbound.perDay[i] ?? 0, sent: d.outbound.perDay[i] ?? 0, joined: d.subscriptions.joinedPerDay[i] ?? 0 }));
  const channels = [...new Set([...Object.keys(d.inbound.byChannel), ...Object.keys(d.outbound.byChannel)])].sort();
  const channelRows = channels.map((ch) => {
    const o = d.outbound.byChannel[ch] ?? { sent: 0, delivered: 0, read: 0, failed: 0, segments: 0 };
    const r = d.rates.byChannel[ch] ?? { delivered: null, read: null };
    return { channel: ch, label: t(channelKey(ch)), received: d.inbound.byChannel[ch] ?? 0, ...o, deliveredPct: r.delivered, readPct: r.read, deliveredText: pctText(r.delivered), readText: pctText(r.read) };
  });
  const categories = Object.entries(d.complaints.byCategory).map(([category, count]) => ({ category, label: t(`complaints.category.${category}`), count }));
  const sla = SLA_STATES.map((s) => ({ state: s, label: t(`complaints.sla.${s}`), count: d.complaints.bySla[s] ?? 0 }));
  const routes = Object.entries(d.inbound.byRoute).sort((a, b) => b[1] - a[1]).map(([route, count]) => ({ route, count }));
  return {
    rates: { delivered: pctText(d.rates.delivered), read: pctText(d.rates.read) },
    sensitiveHidden: d.complaints.sensitiveTotal !== null,
    daily,
    channelRows,
    categories,
    sla,
    routes,
    purposes: Object.entries(d.outbound.byPurpose).map(([purpose, count]) => ({ purpose, count })),
    charts: {
      daily: chart({ type: 'bar', labels: dayLabels, datasets: [{ label: t('dashboard.received'), data: daily.map((x) => x.received) }, { label: t('dashboard.sent'), data: daily.map((x) => x.sent) }] }),
      channels: chart({ type: 'bar', labels: channelRows.map((c) => c.label), datasets: [{ label: t('dashboard.received'), data: channelRows.map((c) => c.received) }, { label: t('dashboard.sent'), data: channelRows.map((c) => c.sent) }] }),
      rates: chart({ type: 'bar', labels: channelRows.map((c) => c.label), datasets: [{ label: `${t('dashboard.deliveredRate')} %`, data: channelRows.map((c) => c.deliveredPct ?? 0) }, { label: `${t('dashboard.readRate')} %`, data: channelRows.map((c) => c.readPct ?? 0) }] }),
      joined: chart({ type: 'line', labels: dayLabels, datasets: [{ label: t('dashboard.newSubscriptions'), data: daily.map((x) => x.joined) }] }),
      surveys: chart({ type: 'bar', horizontal: true, labels: d.surveys.bySurvey.map((s) => s.title), datasets: [{ label: t('dashboard.started'), data: d.surveys.bySurvey.map((s) => s.started) }, { label: t('dashboard.completed'), data: d.surveys.bySurvey.map((s) => s.completed) }] }),
      categories: chart({ type: 'bar', horizontal: true, labels: categories.map((c) => c.label), datasets: [{ label: t('dashboard.complaints'), data: categories.map((c) => c.count) }] }),
      sla: chart({ type: 'doughnut', labels: sla.map((s) => s.label), datasets: [{ label: t('dashboard.sla'), data: sla.map((s) => s.count) }] }),
      topics: chart({ type: 'bar', horizontal: true, stacked: true, labels: d.topics.topics.map((x) => x.topic), datasets: [{ label: t('dashboard.faqHits'), data: d.topics.topics.map((x) => x.faq) }, { label: t('dashboard.broadcastMessages'), data: d.topics.topics.map((x) => x.broadcast) }] }),
    },
  };
}

function weeklyView(r: WeeklyReport, t: (k: string) => string) {
  return {
    report: r,
    indicators: r.indicators.map((i) => ({ ...i, label: t(`weekly.indicator.${i.key}`), up: i.change > 0, down: i.change < 0 })),
    notable: r.indicators.filter((i) => i.notable).map((i) => ({ ...i, label: t(`weekly.indicator.${i.key}`), up: i.change > 0 })),
    channels: r.messages.byChannel.map((c) => ({ ...c, label: t(channelKey(c.channel)), deliveredText: pctText(c.deliveredPct), readText: pctText(c.readPct) })),
    breakdowns: r.breakdowns.map((b) => ({
      ...b,
      title: t(`weekly.breakdown.${b.name}`),
      rows: b.values.map((v) => ({ ...v, percent: b.total ? Math.round((1000 * v.count) / b.total) / 10 : 0 })),
      notRecordedPct: b.total ? Math.round((1000 * b.notRecorded) / b.total) / 10 : 0,
    })),
    categories: r.feedback.byCategory.map((c) => ({ ...c, label: t(`complaints.category.${c.category}`), change: c.count - c.previous })),
    sla: SLA_STATES.map((s) => ({ label: t(`complaints.sla.${s}`), count: r.feedback.bySla[s] ?? 0 })),
  };
}

/** The dashboard (also the signed-in home page, /): the period's figures, tables beside charts. */
export async function dashboardPage(ctx: Ctx, renderer: Renderer): Promise<void> {
  const { config, db } = ctx.services;
  const view = (page: string, data: Record<string, unknown>, status = 200) => render(ctx, renderer, page, data, status);
  const locale = localeOf(ctx);
  const form = { from: str(ctx.query.from), to: str(ctx.query.to), test: str(ctx.query.test) === '1' };
  let period;
  try {
    period = periodFrom(form, config.DEFAULT_TIMEZONE);
  } catch (e) {
    if (e instanceof HttpError && e.status === 400) return view('dashboard/index', { title: 'dashboard.title', form, errors: e.details }, 400);
    throw e;
  }
  const figures = await dashboardFigures(db.knex, { permissions: ctx.state.permissions ?? [] }, period, { includeTest: form.test });
  view('dashboard/index', {
    title: 'dashboard.title',
    form: { ...form, from: period.fromDate, to: period.toDate },
    d: figures,
    ...dashboardView(figures, (k) => renderer.t(locale, k)),
  });
}

export function reportsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);
  const tr = (ctx: Ctx) => {
    const locale = localeOf(ctx);
    return (k: string) => renderer.t(locale, k);
  };

  r.get('/dashboard', needs('reports.read'), h((ctx) => dashboardPage(ctx, renderer)));

  const weekParam = (ctx: Ctx): string => {
    const w = str(ctx.query.week).trim();
    if (!w) return lastCompleteWeek(ctx.services.config.DEFAULT_TIMEZONE).fromDate;
    if (!isDate(w)) throw new HttpError(400, 'validation_failed', 'The week is not valid', { week: 'must be a date as YYYY-MM-DD (any day of the week)' });
    return w;
  };

  r.get('/reports/weekly', needs('reports.read'), h(async (ctx) => {
    const { config, db } = ctx.services;
    const before = Number(ctx.query.before) || undefined;
    const snapshots = await listSnapshots(db.knex, { before, limit: 20 });
    let date: string;
    try {
      date = weekParam(ctx);
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) return view(ctx, 'reports/weekly', { title: 'weekly.title', errors: e.details, snapshots: snapshots.data, next: snapshots.next, week: str(ctx.query.week) }, 400);
      throw e;
    }
    const report = await weeklyReport(db.knex, date, config.DEFAULT_TIMEZONE);
    const today = localDate(new Date(), config.DEFAULT_TIMEZONE);
    view(ctx, 'reports/weekly', {
      title: 'weekly.title',
      ...weeklyView(report, tr(ctx)),
      week: report.week.from,
      prevWeek: addDays(report.week.from, -7),
      nextWeek: addDays(report.week.from, 7) <= today ? addDays(report.week.from, 7) : null,
      snapshots: snapshots.data,
      next: snapshots.next,
      live: true,
      canStore: (ctx.state.permissions ?? []).includes('settings.manage'),
    });
  }));

  for (const format of ['csv', 'xlsx'] as const) {
    r.get(`/reports/weekly.${format}`, needs('reports.read'), h(async (ctx) => {
      const { config, db } = ctx.services;
      const snapshotId = Number(ctx.query.snapshot) || undefined;
      const report = snapshotId ? (await getSnapshot(db.knex, snapshotId)).report : await weeklyReport(db.knex, weekParam(ctx), config.DEFAULT_TIMEZONE);
      const t = tr(ctx);
      await audit(db, ctx.state.actor!, { action: 'report.export', entityType: 'report', entityId: report.week.label, detail: { format } });
      ctx.set('Content-Disposition', `attachment; filename="ayni-weekly-${report.week.label}.${format}"`);
      if (format === 'csv') {
        ctx.type = 'text/csv; charset=utf-8';
        ctx.body = weeklyCsv(report, t);
      } else {
        ctx.type = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
        ctx.body = await weeklyXlsx(report, t);
      }
    }));
  }

  r.post('/reports/weekly/snapshots', needs('settings.manage'), h(async (ctx) => {
    const { config, db } = ctx.services;
    const w = str((ctx.request.body as Record<string, unknown> | undefined)?.week).trim();
    if (!isDate(w)) throw new HttpError(400, 'validation_failed', 'The week is not valid', { week: 'must be a date as YYYY-MM-DD (any day of the week)' });
    const snap = await storeWeeklySnapshot(db, config, ctx.state.actor!, weekOf(w, config.DEFAULT_TIMEZONE).fromDate);
    flash(ctx, 'weekly.stored');
    ctx.redirect(`/reports/snapshots/${snap.id}`);
  }));

  r.get('/reports/snapshots/:id', needs('reports.read'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    if (!Number.isInteger(id) || id <= 0) throw notFound('There is no such report');
    const snap = await getSnapshot(ctx.services.db.knex, id);
    const snapshots = await listSnapshots(ctx.services.db.knex, { limit: 20 });
    view(ctx, 'reports/weekly', { title: 'weekly.title', ...weeklyView(snap.report, tr(ctx)), snapshot: snap, week: snap.report.week.from, snapshots: snapshots.data, next: snapshots.next, live: false });
  }));

  return r;
}
