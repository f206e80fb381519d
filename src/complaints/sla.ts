/**
 * The complaints job (every 5 minutes, src/jobs/complaints-sla.ts):
 *  1. escalation: an open case past its service level (due_at) gets an "escalated" event, its
 *     escalated_at set, and an audit event — once; the console shows it with an "overdue" badge at the
 *     top of the inbox, and the assignee's and focal points' lists (e-mail is out of scope);
 *  2. psychosocial follow-ups (yellow) past their due date are marked overdue the same way;
 *  3. intakes nobody finished within 24 hours are closed (what was told is kept, anonymously);
 *  4. outbox rows that name a case (acknowledgements, STATUS answers, follow-ups, emergency numbers)
 *     have their content blanked once final, so that no export of a contact's messages can connect
 *     them to a case they cannot see.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/orm.js';
import { toBool, toInt } from '../db/values.js';
import { audit, SYSTEM } from '../staff/audit.js';
import { restrictedRef } from './crypto.js';
import { expireIntakes } from './intake.js';
import { OPEN_STATUSES } from './model.js';

const FINAL = ['sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped'];

export interface SlaRunResult {
  [key: string]: number;
  escalated: number;
  followupsOverdue: number;
  intakesExpired: number;
  intakesFiled: number;
  outboxBlanked: number;
}

export async function runComplaintsJob(db: Database, config: Config, opts: { now?: Date } = {}): Promise<SlaRunResult> {
  const now = opts.now ?? new Date();
  const { knex } = db;
  const result: SlaRunResult = { escalated: 0, followupsOverdue: 0, intakesExpired: 0, intakesFiled: 0, outboxBlanked: 0 };

  // 1. Escalation, once per deadline.
  for (;;) {
    const due = await knex('complaints').whereIn('status', OPEN_STATUSES as string[]).where('due_at', '<', now).whereNull('escalated_at').orderBy('due_at').limit(200).select('id', 'code', 'sensitive', 'priority', 'status');
    if (!due.length) break;
    for (const c of due) {
      const done = await knex.transaction(async (trx) => {
        const n = await trx('complaints').where('id', c.id).whereNull('escalated_at').update({ escalated_at: now, updated_at: now });
        if (!n) return false;
        await trx('complaint_events').insert({ complaint_id: c.id, at: now, type: 'escalated', actor_type: 'system', actor_id: null, actor_label: 'system', from_value: String(c.status), to_value: String(c.priority), note: null });
        return true;
      });
      if (!done) continue;
      result.escalated++;
      const sensitive = toBool(c.sensitive);
      await audit(db, SYSTEM, {
        action: 'complaint.escalate',
        entityType: sensitive ? 'restricted' : 'complaint',
        entityId: sensitive ? restrictedRef('complaint', String(c.code)) : String(c.code),
        detail: { priority: c.priority },
      });
    }
  }

  // 2. Psychosocial follow-ups past due.
  result.followupsOverdue = await knex('pss_triage').whereNotNull('followup_due_at').whereNull('followup_done_at').whereNull('followup_overdue_at').where('followup_due_at', '<', now).update({ followup_overdue_at: now });
  if (result.followupsOverdue) await audit(db, SYSTEM, { action: 'pss.followup_overdue', entityType: 'restricted', detail: { count: result.followupsOverdue } });

  // 3. Intakes nobody finished.
  for (;;) {
    const r = await expireIntakes(knex, config, now);
    result.intakesExpired += r.expired;
    result.intakesFiled += r.filed;
    if (r.expired < 500) break;
  }

  // 4. Blank the content of final outbox rows that name a case.
  for (;;) {
    const ids = (await knex('private_outbox as p').join('outbox as o', 'o.id', 'p.outbox_id').whereIn('o.status', FINAL).limit(500).pluck('p.outbox_id')).map(toInt);
    if (!ids.length) break;
    await knex.transaction(async (trx) => {
      await trx('outbox').whereIn('id', ids).update({ content: null });
      await trx('private_outbox').whereIn('outbox_id', ids).delete();
    });
    result.outboxBlanked += ids.length;
  }
  return result;
}
