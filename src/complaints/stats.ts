/**
 * Counts of complaints received over a period, for the dashboard and the weekly report
 * (src/reports/). The same rule as everywhere in this domain: through `scope()`, a viewer without
 * `complaints.sensitive` counts only the cases they may see, and learns of sensitive cases one
 * anonymous total only — no category, status, date or service level of theirs.
 */
import type { Knex } from '../db/orm.js';
import { toDate, toDateOrNull, toInt } from '../db/values.js';
import { countsWithout, type PeriodFilter } from '../messaging/stats.js';
import type { Permission } from '../staff/roles.js';
import { CATEGORIES, SENSITIVE_CATEGORIES, slaState, type Category, type SlaState } from './model.js';
import { scope, seesSensitive } from './service.js';

export const SLA_STATES: readonly SlaState[] = ['on_time', 'due_soon', 'overdue', 'met', 'missed'];

export interface ComplaintPeriodCounts {
  /** Cases received in the period that the viewer may see. */
  received: number;
  byCategory: Record<string, number>;
  byStatus: Record<string, number>;
  bySource: Record<string, number>;
  /** Service-level state now of the cases received in the period. */
  bySla: Record<SlaState, number>;
  /** Cases of the category 'rumour' (rumours and misinformation people reported). */
  rumours: number;
  /** For viewers who cannot see sensitive cases: how many were received in the period, and nothing else. Null for those who can. */
  sensitiveTotal: number | null;
}

export async function complaintPeriodCounts(knex: Knex, viewer: { permissions: readonly Permission[] }, f: PeriodFilter, now = new Date()): Promise<ComplaintPeriodCounts> {
  const inPeriod = () => knex('complaints as c').where('c.received_at', '>=', f.from).where('c.received_at', '<', f.to);
  // Left-out contacts (a handful of test contacts): their cases are dropped here, by id.
  const excluded = f.excludeContacts ? new Set(((await f.excludeContacts(knex)) as Record<string, unknown>[]).map((r) => toInt(Object.values(r)[0]))) : new Set<number>();
  const rows = ((await scope(inPeriod(), viewer).select('c.contact_id', 'c.category', 'c.status', 'c.source', 'c.received_at', 'c.due_at', 'c.resolved_at')) as Record<string, unknown>[]).filter(
    (r) => r.contact_id === null || r.contact_id === undefined || !excluded.has(toInt(r.contact_id)),
  );
  const out: ComplaintPeriodCounts = {
    received: rows.length,
    byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, 0])),
    byStatus: {},
    bySource: {},
    bySla: { on_time: 0, due_soon: 0, overdue: 0, met: 0, missed: 0 },
    rumours: 0,
    sensitiveTotal: null,
  };
  for (const r of rows) {
    const category = String(r.category);
    out.byCategory[category] = (out.byCategory[category] ?? 0) + 1;
    out.byStatus[String(r.status)] = (out.byStatus[String(r.status)] ?? 0) + 1;
    out.bySource[String(r.source)] = (out.bySource[String(r.source)] ?? 0) + 1;
    out.bySla[slaState({ status: String(r.status), receivedAt: toDate(r.received_at), dueAt: toDate(r.due_at), resolvedAt: toDateOrNull(r.resolved_at) }, now)]++;
    if (category === 'rumour') out.rumours++;
  }
  if (!seesSensitive(viewer)) {
    // Sensitive categories are never listed to this viewer, not even with a zero.
    for (const c of Object.keys(out.byCategory)) if (SENSITIVE_CATEGORIES.has(c as Category) && out.byCategory[c] === 0) delete out.byCategory[c];
    const [s] = await countsWithout(
      knex,
      f,
      'c.contact_id',
      (only) => {
        const q = inPeriod().where('c.sensitive', true);
        only?.(q);
        return q.count({ n: '*' });
      },
      [],
      ['n'],
    );
    out.sensitiveTotal = toInt(s.n);
  }
  return out;
}
