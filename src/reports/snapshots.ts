/**
 * Stored weekly reports: what the report said when it was built (by the weekly-report job on Monday
 * morning, or by staff), kept so that last month's figures can be read as they were sent. Building
 * the same week again replaces its snapshot.
 */
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { lastCompleteWeek, weekOf } from './period.js';
import { weeklyReport, type WeeklyReport } from './weekly.js';

export interface SnapshotSummary {
  id: number;
  label: string;
  from: string;
  to: string;
  createdBy: string | null;
  createdAt: string;
}

export interface Snapshot extends SnapshotSummary {
  report: WeeklyReport;
}

const parse = (v: unknown): WeeklyReport => (typeof v === 'string' ? JSON.parse(v) : v) as WeeklyReport;

function summary(r: Record<string, unknown>): SnapshotSummary {
  const report = parse(r.data);
  return { id: toInt(r.id), label: report.week.label, from: report.week.from, to: report.week.to, createdBy: (r.created_by_label as string | null) ?? null, createdAt: toDate(r.created_at).toISOString() };
}

/** Builds the report of the week containing `date` and stores it, replacing an earlier snapshot of that week. */
export async function storeWeeklySnapshot(db: Database, config: Pick<Config, 'DEFAULT_TIMEZONE'>, actor: Actor, date: string, now = new Date()): Promise<Snapshot> {
  const week = weekOf(date, config.DEFAULT_TIMEZONE);
  const report = await weeklyReport(db.knex, week.fromDate, config.DEFAULT_TIMEZONE, now);
  const row = { kind: 'weekly', period_start: week.from, period_end: week.to, data: JSON.stringify(report), created_by_label: actor.type === 'system' ? 'weekly-report job' : actor.label, created_at: now };
  await db.knex('report_snapshots').insert(row).onConflict(['kind', 'period_start']).merge(['period_end', 'data', 'created_by_label', 'created_at']);
  const stored = await db.knex('report_snapshots').where({ kind: 'weekly' }).where('period_start', week.from).first();
  const snap = { ...summary(stored), report };
  await audit(db, actor, { action: 'report.snapshot', entityType: 'report_snapshot', entityId: snap.id, detail: { week: report.week.label } });
  return snap;
}

/** The weekly job: last week's report, stored. */
export async function runWeeklyReportJob(db: Database, config: Pick<Config, 'DEFAULT_TIMEZONE'>, actor: Actor, now = new Date()): Promise<{ week: string; snapshot: number }> {
  const week = lastCompleteWeek(config.DEFAULT_TIMEZONE, now);
  const snap = await storeWeeklySnapshot(db, config, actor, week.fromDate, now);
  return { week: snap.label, snapshot: snap.id };
}

export async function listSnapshots(knex: Knex, opts: { before?: number; limit?: number } = {}): Promise<{ data: SnapshotSummary[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 20, 1), 100);
  const q = knex('report_snapshots').where('kind', 'weekly').orderBy('period_start', 'desc').orderBy('id', 'desc').limit(limit + 1);
  if (opts.before) {
    const at = await knex('report_snapshots').where('id', opts.before).first('period_start');
    if (at) q.where('period_start', '<', at.period_start);
  }
  const rows = (await q) as Record<string, unknown>[];
  const data = rows.slice(0, limit).map(summary);
  return { data, next: rows.length > limit ? data[data.length - 1].id : null };
}

export async function getSnapshot(knex: Knex, id: number): Promise<Snapshot> {
  const r = await knex('report_snapshots').where({ id, kind: 'weekly' }).first();
  if (!r) throw notFound('There is no such report');
  return { ...summary(r), report: parse(r.data) };
}
