/**
 * Reports API (aggregates only, permission reports.read):
 *   GET  /reports/dashboard?from&to&includeTest   the dashboard's figures for a period
 *   GET  /reports/weekly?week=YYYY-MM-DD          the weekly situation report of the week containing the date
 *   GET  /reports/weekly/snapshots                stored weekly reports, newest week first
 *   GET  /reports/weekly/snapshots/:id            one stored report
 *   POST /reports/weekly/snapshots {week}         build and store a week's report (settings.manage)
 */
import { z } from 'zod';
import { type Api, HttpError, idParam } from '../http/api.js';
import { dashboardFigures } from './dashboard.js';
import { isDate, lastCompleteWeek, periodFrom, weekOf } from './period.js';
import { weeklyReport } from './weekly.js';
import { getSnapshot, listSnapshots, storeWeeklySnapshot } from './snapshots.js';

const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'must be a date as YYYY-MM-DD' });

export function registerReportsApi(api: Api): void {
  api.route({
    method: 'get', path: '/reports/dashboard', tag: 'reports', permission: 'reports.read',
    summary: 'Figures for a period (default the last 7 days): messages by channel, delivery and read rates, people reached, subscriptions, surveys, complaints (sensitive ones as an anonymous total unless you may see them), topics',
    query: z.object({ from: date.optional(), to: date.optional(), includeTest: z.enum(['true', 'false']).optional() }),
    handler: async (ctx, { query }) => {
      const period = periodFrom(query, ctx.services.config.DEFAULT_TIMEZONE);
      return { data: await dashboardFigures(ctx.services.db.knex, { permissions: ctx.state.permissions ?? [] }, period, { includeTest: query.includeTest === 'true' }) };
    },
  });
  api.route({
    method: 'get', path: '/reports/weekly', tag: 'reports', permission: 'reports.read',
    summary: 'The weekly situation report (Monday to Sunday) of the week containing the date; by default the last complete week',
    query: z.object({ week: date.optional() }),
    handler: async (ctx, { query }) => {
      const tz = ctx.services.config.DEFAULT_TIMEZONE;
      if (query.week && !isDate(query.week)) throw new HttpError(400, 'validation_failed', 'The request is not valid', { 'query.week': 'is not a date of the calendar' });
      const day = query.week ? weekOf(query.week, tz).fromDate : lastCompleteWeek(tz).fromDate;
      return { data: await weeklyReport(ctx.services.db.knex, day, tz) };
    },
  });
  api.route({
    method: 'get', path: '/reports/weekly/snapshots', tag: 'reports', permission: 'reports.read',
    summary: 'Stored weekly reports, newest week first',
    query: z.object({ before: z.coerce.number().int().positive().optional(), limit: z.coerce.number().int().min(1).max(100).optional() }),
    handler: async (ctx, { query }) => listSnapshots(ctx.services.db.knex, query),
  });
  api.route({
    method: 'get', path: '/reports/weekly/snapshots/:id', tag: 'reports', permission: 'reports.read',
    summary: 'One stored weekly report', params: idParam,
    handler: async (ctx, { params }) => ({ data: await getSnapshot(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'post', path: '/reports/weekly/snapshots', tag: 'reports', permission: 'settings.manage', status: 201,
    summary: 'Build the weekly report of the week containing the date and store it (replacing an earlier one of that week)',
    body: z.object({ week: date }),
    handler: async (ctx, { body }) => {
      if (!isDate(body.week)) throw new HttpError(400, 'validation_failed', 'The request is not valid', { 'body.week': 'is not a date of the calendar' });
      const snap = await storeWeeklySnapshot(ctx.services.db, ctx.services.config, ctx.state.actor!, body.week);
      return { data: { id: snap.id, label: snap.label, from: snap.from, to: snap.to } };
    },
  });
}
