/**
 * /api/v1 routes for complaints, referrals, the referral directory and psychosocial triage.
 *
 * Cases are addressed by their code. A sensitive case answers 404 to anyone without
 * complaints.sensitive — exactly as a code nobody used — and is absent from their lists, searches,
 * exports and counts (which show sensitive cases only as one anonymous total).
 */
import { z } from 'zod';
import { Api } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { enterComplaint, staffEntrySchema } from './entry.js';
import { PRIORITIES, slaFromConfig } from './model.js';
import { closeHandoff, followupDone, getTriage, listTriage, setTriage, suggestionFor, triageInputSchema } from './pss.js';
import {
  OUTCOMES, createService, getReferral, getService, listReferrals, listServices, referComplaint, referralInputSchema, referralUpdateSchema, serviceInputSchema,
  serviceUpdateSchema, updateReferral, updateService as updateServiceRecord,
} from './referrals.js';
import {
  addNote, assignComplaint, caseAccessLog, categorySchema, changeStatus, complaintStats, exportComplaintsCsv, getComplaint, listComplaints, listQuerySchema,
  setCategory, setPriority, setSensitive, statusChangeSchema, type Complaint, type Viewer,
} from './service.js';

export const viewerOf = (ctx: Ctx): Viewer => ({ actor: ctx.state.actor!, permissions: ctx.state.permissions ?? [] });
const codeParam = z.object({ code: z.string().min(1).max(20) });
const stringId = z.object({ id: z.string().regex(/^[a-f0-9]{12}$/, { message: 'not a valid id' }) });
const numericId = z.object({ id: z.coerce.number().int().positive() });

function publicComplaint(c: Complaint) {
  return {
    ...c,
    receivedAt: c.receivedAt.toISOString(),
    dueAt: c.dueAt.toISOString(),
    acknowledgedAt: c.acknowledgedAt?.toISOString() ?? null,
    resolvedAt: c.resolvedAt?.toISOString() ?? null,
    closedAt: c.closedAt?.toISOString() ?? null,
    escalatedAt: c.escalatedAt?.toISOString() ?? null,
    ackSentAt: c.ackSentAt?.toISOString() ?? null,
    followupSentAt: c.followupSentAt?.toISOString() ?? null,
    narrativeErasedAt: c.narrativeErasedAt?.toISOString() ?? null,
  };
}

const complaintOut = z.object({
  code: z.string(), source: z.string(), category: z.string(), sensitive: z.boolean(), suggestedSensitive: z.boolean(), priority: z.string(), status: z.string(),
  assignee: z.object({ id: z.number(), name: z.string() }).nullable(), anonymous: z.boolean(), wantsAnswer: z.boolean(), receivedAt: z.string(), dueAt: z.string(),
  sla: z.enum(['on_time', 'due_soon', 'overdue', 'met', 'missed']),
}).passthrough();

const { cursor: _c, limit: _l, ...exportShape } = listQuerySchema.shape;
const exportQuerySchema = z.object(exportShape);

export function registerComplaintsApi(api: Api): void {
  // ---------------------------------------------------------------------------------- cases
  api.route({
    method: 'get', path: '/complaints', tag: 'complaints', permission: 'complaints.read',
    summary: 'Complaints, newest first: filters (status, category, priority, source, assignee, SLA), search (code or words), cursor pagination. Sensitive cases only for focal points',
    query: listQuerySchema,
    response: z.object({ data: z.array(complaintOut), next: z.string().nullable() }),
    handler: async (ctx, { query }) => {
      const r = await listComplaints(ctx.services.db, viewerOf(ctx), query, new Date(), slaFromConfig(ctx.services.config));
      return { data: r.data.map(publicComplaint), next: r.next };
    },
  });

  api.route({
    method: 'post', path: '/complaints', tag: 'complaints', permission: 'complaints.manage', status: 201,
    summary: 'Enter a complaint taken by phone or in person (hotline); anonymous, or with the person’s number or contact id',
    body: staffEntrySchema,
    handler: async (ctx, { body }) => {
      const opened = await enterComplaint(ctx.services.db, ctx.services.config, viewerOf(ctx), body);
      return { code: opened.code, sensitive: opened.sensitive, priority: opened.priority, dueAt: opened.dueAt.toISOString(), anonymous: opened.anonymous };
    },
  });

  api.route({
    method: 'get', path: '/complaints/stats', tag: 'complaints', permission: 'reports.read',
    summary: 'Counts by status, category and priority, open and overdue. Without complaints.sensitive, sensitive cases appear only as one anonymous total',
    handler: async (ctx) => complaintStats(ctx.services.db.knex, viewerOf(ctx)),
  });

  api.route({
    method: 'get', path: '/complaints/export', tag: 'complaints', permission: 'complaints.read',
    summary: 'The cases matching the filters as CSV (the same filters as the list)',
    query: exportQuerySchema,
    handler: async (ctx, { query }) => {
      const { csv } = await exportComplaintsCsv(ctx.services.db, viewerOf(ctx), query, new Date(), slaFromConfig(ctx.services.config));
      ctx.type = 'text/csv; charset=utf-8';
      ctx.set('Content-Disposition', `attachment; filename="complaints-${new Date().toISOString().slice(0, 10)}.csv"`);
      ctx.set('Cache-Control', 'no-store');
      return csv;
    },
  });

  api.route({
    method: 'get', path: '/complaints/:code', tag: 'complaints', permission: 'complaints.read',
    summary: 'One case: narrative, resolution, history and allowed status moves. Every read is audited',
    params: codeParam,
    handler: async (ctx, { params }) => {
      const c = await getComplaint(ctx.services.db, viewerOf(ctx), params.code);
      return { ...publicComplaint(c), narrative: c.narrative, resolution: c.resolution, transitions: c.transitions, auditRef: c.auditRef, events: c.events.map((e) => ({ ...e, at: e.at.toISOString() })) };
    },
  });

  api.route({
    method: 'get', path: '/complaints/:code/access', tag: 'complaints', permission: 'complaints.read',
    summary: 'Who read or changed this case, newest first (from the audit log)',
    params: codeParam,
    handler: async (ctx, { params }) => ({ data: (await caseAccessLog(ctx.services.db, viewerOf(ctx), params.code)).map((e) => ({ ...e, at: e.at.toISOString() })) }),
  });

  api.route({
    method: 'post', path: '/complaints/:code/status', tag: 'complaints', permission: 'complaints.manage',
    summary: 'Move a case: new → acknowledged → in_progress → referred → resolved → closed. Resolving needs `resolution`, which is sent to the person when they asked for an answer and consented',
    params: codeParam, body: statusChangeSchema,
    handler: async (ctx, { params, body }) =>
      changeStatus(ctx.services.db, viewerOf(ctx), params.code, body, { programme: ctx.services.config.PROGRAMME_NAME, defaultLanguage: ctx.services.config.DEFAULT_LANGUAGE }),
  });

  api.route({
    method: 'post', path: '/complaints/:code/assign', tag: 'complaints', permission: 'complaints.manage',
    summary: 'Assign a case to a staff user who handles complaints (a focal point for a sensitive case), or unassign it (null)',
    params: codeParam, body: z.object({ assigneeId: z.number().int().positive().nullable() }),
    handler: async (ctx, { params, body }) => {
      await assignComplaint(ctx.services.db, viewerOf(ctx), params.code, body.assigneeId);
      return { assigneeId: body.assigneeId };
    },
  });

  api.route({
    method: 'post', path: '/complaints/:code/priority', tag: 'complaints', permission: 'complaints.manage',
    summary: 'Set the priority; the deadline follows the service level (COMPLAINTS_SLA_*_HOURS from receipt)',
    params: codeParam, body: z.object({ priority: z.enum(PRIORITIES) }),
    handler: async (ctx, { params, body }) => {
      const due = await setPriority(ctx.services.db, viewerOf(ctx), params.code, body.priority, slaFromConfig(ctx.services.config));
      return { priority: body.priority, dueAt: due.toISOString() };
    },
  });

  api.route({
    method: 'post', path: '/complaints/:code/category', tag: 'complaints', permission: 'complaints.manage',
    summary: 'Re-code a case; a sensitive category makes it sensitive (it then leaves the view of everyone but focal points)',
    params: codeParam, body: categorySchema,
    handler: async (ctx, { params, body }) => setCategory(ctx.services.db, viewerOf(ctx), params.code, body.category),
  });

  api.route({
    method: 'post', path: '/complaints/:code/sensitive', tag: 'complaints', permission: 'complaints.manage',
    summary: 'Mark a case sensitive (anyone handling complaints; it then leaves their view), or not sensitive (focal points, non-sensitive categories only)',
    params: codeParam, body: z.object({ sensitive: z.boolean() }),
    handler: async (ctx, { params, body }) => setSensitive(ctx.services.db, viewerOf(ctx), params.code, body.sensitive),
  });

  api.route({
    method: 'post', path: '/complaints/:code/notes', tag: 'complaints', permission: 'complaints.manage', status: 201,
    summary: 'Add a note to the case history (sealed when the case is sensitive)',
    params: codeParam, body: z.object({ note: z.string().min(1).max(5000) }),
    handler: async (ctx, { params, body }) => {
      await addNote(ctx.services.db, viewerOf(ctx), params.code, body.note);
      return { ok: true };
    },
  });

  api.route({
    method: 'get', path: '/complaints/:code/referrals', tag: 'complaints', permission: 'complaints.read',
    summary: 'Referrals made for this case',
    params: codeParam,
    handler: async (ctx, { params }) => {
      await getComplaint(ctx.services.db, viewerOf(ctx), params.code); // 404 unless visible (and audited as a read)
      const r = await listReferrals(ctx.services.db, viewerOf(ctx), { complaintCode: params.code.toUpperCase(), limit: 500 });
      return { data: r.data };
    },
  });

  api.route({
    method: 'post', path: '/complaints/:code/referrals', tag: 'complaints', permission: 'complaints.manage', status: 201,
    summary: 'Refer the person to a service of the directory — only with their consent (`consent: true`)',
    params: codeParam, body: referralInputSchema,
    handler: async (ctx, { params, body }) => referComplaint(ctx.services.db, viewerOf(ctx), params.code, body),
  });

  // ---------------------------------------------------------------------------------- referrals
  api.route({
    method: 'get', path: '/referrals', tag: 'referrals', permission: 'complaints.read',
    summary: 'Referral records, newest first (restricted ones — of sensitive cases or triage — only for focal points)',
    query: z.object({ outcome: z.enum(OUTCOMES).optional(), serviceId: z.coerce.number().int().positive().optional(), before: z.string().regex(/^\d+_[a-f0-9]{12}$/).optional(), limit: z.coerce.number().int().min(1).max(500).default(50) }),
    handler: async (ctx, { query }) => listReferrals(ctx.services.db, viewerOf(ctx), query),
  });

  api.route({
    method: 'get', path: '/referrals/:id', tag: 'referrals', permission: 'complaints.read',
    summary: 'One referral', params: stringId,
    handler: async (ctx, { params }) => getReferral(ctx.services.db, viewerOf(ctx), params.id),
  });

  api.route({
    method: 'patch', path: '/referrals/:id', tag: 'referrals', permission: 'complaints.manage',
    summary: 'Record the outcome of a referral (pending, accepted, completed, declined, unreachable)',
    params: stringId, body: referralUpdateSchema,
    handler: async (ctx, { params, body }) => updateReferral(ctx.services.db, viewerOf(ctx), params.id, body),
  });

  api.route({
    method: 'get', path: '/referral-services', tag: 'referrals', permission: 'complaints.read',
    summary: 'The directory of services (search by organisation, service, area or kind)',
    query: z.object({ q: z.string().trim().max(100).optional(), active: z.enum(['true', 'false']).optional() }),
    handler: async (ctx, { query }) => ({ data: await listServices(ctx.services.db.knex, { q: query.q, active: query.active === undefined ? undefined : query.active === 'true' }) }),
  });

  api.route({
    method: 'get', path: '/referral-services/:id', tag: 'referrals', permission: 'complaints.read',
    summary: 'One service of the directory', params: numericId,
    handler: async (ctx, { params }) => getService(ctx.services.db.knex, params.id),
  });

  api.route({
    method: 'post', path: '/referral-services', tag: 'referrals', permission: 'complaints.manage', status: 201,
    summary: 'Add a service to the directory', body: serviceInputSchema,
    handler: async (ctx, { body }) => createService(ctx.services.db, ctx.state.actor!, body),
  });

  api.route({
    method: 'patch', path: '/referral-services/:id', tag: 'referrals', permission: 'complaints.manage',
    summary: 'Change a service of the directory (active: false hides it from new referrals)', params: numericId, body: serviceUpdateSchema,
    handler: async (ctx, { params, body }) => updateService(ctx, params.id, body),
  });

  // ---------------------------------------------------------------------------------- triage
  api.route({
    method: 'get', path: '/pss/triage', tag: 'pss', permission: 'complaints.sensitive',
    summary: 'Psychosocial triage records, newest first (open: handoffs and follow-ups still pending)',
    query: z.object({ contactId: z.coerce.number().int().positive().optional(), open: z.enum(['true', 'false']).optional(), limit: z.coerce.number().int().min(1).max(200).default(50) }),
    handler: async (ctx, { query }) => ({ data: await listTriage(ctx.services.db, viewerOf(ctx), { contactId: query.contactId, open: query.open === 'true', limit: query.limit }) }),
  });

  api.route({
    method: 'post', path: '/pss/triage', tag: 'pss', permission: 'complaints.sensitive', status: 201,
    summary: 'Set green / yellow / red for a contact: red hands the conversation to a human and sends the emergency numbers; yellow schedules a follow-up (and a referral with consent); green sends self-care messages',
    body: triageInputSchema,
    handler: async (ctx, { body }) => setTriage(ctx.services.db, ctx.services.config, viewerOf(ctx), body),
  });

  api.route({
    method: 'get', path: '/pss/triage/:id', tag: 'pss', permission: 'complaints.sensitive',
    summary: 'One triage record', params: stringId,
    handler: async (ctx, { params }) => getTriage(ctx.services.db, viewerOf(ctx), params.id),
  });

  api.route({
    method: 'post', path: '/pss/triage/:id/close-handoff', tag: 'pss', permission: 'complaints.sensitive',
    summary: 'Close a red handoff (messages go through the usual router again)', params: stringId,
    handler: async (ctx, { params }) => {
      await closeHandoff(ctx.services.db, viewerOf(ctx), params.id);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/pss/triage/:id/followup-done', tag: 'pss', permission: 'complaints.sensitive',
    summary: 'Mark a yellow follow-up done', params: stringId,
    handler: async (ctx, { params }) => {
      await followupDone(ctx.services.db, viewerOf(ctx), params.id);
      return { ok: true };
    },
  });

  api.route({
    method: 'get', path: '/pss/contacts/:id/suggestion', tag: 'pss', permission: 'complaints.sensitive',
    summary: 'What keywords in the person’s recent messages suggest (red, yellow or null) — a hint for the trained person, never a decision',
    params: numericId,
    handler: async (ctx, { params }) => {
      const level = await suggestionFor(ctx.services.db.knex, params.id);
      return { suggestedLevel: level };
    },
  });
}

async function updateService(ctx: Ctx, id: number, body: z.input<typeof serviceUpdateSchema>) {
  if (!Object.keys(body ?? {}).length) throw new HttpError(400, 'validation_failed', 'Nothing to change', { body: 'give at least one field' });
  return updateServiceRecord(ctx.services.db, ctx.state.actor!, id, body);
}
