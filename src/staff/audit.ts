/**
 * The audit log: who read or changed which record, when. Details carry identifiers and
 * counts, never personal data (no numbers, names or message text).
 */
import type { Database } from '../db/orm.js';
import type { Role } from './roles.js';
import { toDate } from '../db/values.js';

export interface Actor {
  type: 'staff' | 'token' | 'system';
  /** staff user id or API token id; null for the system. */
  id: number | null;
  /** e-mail of the staff user or name of the token, for the audit page. */
  label: string;
  role: Role | 'system';
  /** the staff user behind a console session (same as id for type staff). */
  userId?: number | null;
  requestId?: string;
}

export const SYSTEM: Actor = { type: 'system', id: null, label: 'system', role: 'system' };

export interface AuditInput {
  action: string;
  entityType?: string;
  entityId?: string | number;
  detail?: Record<string, unknown>;
}

export async function audit(db: Pick<Database, 'knex'>, actor: Actor, e: AuditInput): Promise<void> {
  await db.knex('audit_events').insert({
    at: new Date(),
    actor_type: actor.type,
    actor_id: actor.id,
    actor_label: actor.label,
    action: e.action,
    entity_type: e.entityType ?? null,
    entity_id: e.entityId === undefined ? null : String(e.entityId),
    detail: e.detail ? JSON.stringify(e.detail) : null,
    request_id: actor.requestId ?? null,
  });
}

export interface AuditRow {
  id: number;
  at: Date;
  actorType: string;
  actorId: number | null;
  actorLabel: string | null;
  action: string;
  entityType: string | null;
  entityId: string | null;
  detail: Record<string, unknown> | null;
  requestId: string | null;
}

export interface AuditQuery {
  action?: string;
  entityType?: string;
  entityId?: string;
  actorLabel?: string;
  /** id of the last row of the previous page (rows come newest first). */
  before?: number;
  limit?: number;
}

export async function listAudit(db: Database, q: AuditQuery = {}): Promise<AuditRow[]> {
  const limit = Math.min(Math.max(q.limit ?? 50, 1), 500);
  const query = db.knex('audit_events').select('*').orderBy('id', 'desc').limit(limit);
  if (q.action) query.where('action', q.action);
  if (q.entityType) query.where('entity_type', q.entityType);
  if (q.entityId) query.where('entity_id', q.entityId);
  if (q.actorLabel) query.where('actor_label', q.actorLabel);
  if (q.before) query.where('id', '<', q.before);
  const rows = await query;
  return rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    at: toDate(r.at),
    actorType: String(r.actor_type),
    actorId: r.actor_id === null ? null : Number(r.actor_id),
    actorLabel: (r.actor_label as string | null) ?? null,
    action: String(r.action),
    entityType: (r.entity_type as string | null) ?? null,
    entityId: (r.entity_id as string | null) ?? null,
    detail: r.detail ? (JSON.parse(String(r.detail)) as Record<string, unknown>) : null,
    requestId: (r.request_id as string | null) ?? null,
  }));
}
