/**
 * /api/v1/cash: beneficiary lists (candidates, imports, duplicates, enrolment, exports),
 * distributions and transfers (provider reports), and post-distribution monitoring (plan, start,
 * report, follow-up). Everything needs cash.manage, except what holds no personal data — the
 * distributions themselves, the PDM report (aggregates) and sample sizes — which reports.read may
 * see. Every read or change of personal data is audited (identifiers and counts only).
 */
import { z } from 'zod';
import { Api, idParam } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import { LEGAL_BASES } from '../contacts/consent.js';
import { audit } from '../staff/audit.js';
import { getDuplicate, listDuplicates, resolveDuplicate, resolveSchema } from './duplicates.js';
import { addEnrolled, createDistribution, distributionInputSchema, distributionPatchSchema, getDistribution, importTransfers, listDistributions, listTransfers, updateDistribution } from './distributions.js';
import { exportBeneficiaries, exportRequestSchema } from './export.js';
import { fromBase64, parseMappingText } from './files.js';
import { importBeneficiaries, listImports } from './import.js';
import {
  addCandidates, beneficiaryPatchSchema, candidateSpecSchema, changeStatus, createList, getBeneficiary, getList, listBeneficiaries, listInputSchema, listLists, listPatchSchema,
  previewCandidates, statusChangeSchema, updateBeneficiary, updateList,
} from './lists.js';
import { BENEFICIARY_STATUSES, EXPORT_PROFILES, TRANSFER_STATUSES } from './model.js';
import { pdmPlan, startPdmNow } from './pdm.js';
import { followUpList, pdmReport, reportFile } from './report.js';
import { sampleSize } from './sampling.js';
import { readRawBody } from './upload.js';

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);
const page = { before: z.coerce.number().int().positive().optional(), limit: z.coerce.number().int().min(1).max(500).optional() };

const beneficiaryImportBody = z.object({
  fileName: z.string().min(1).max(255),
  /** CSV text… */
  content: z.string().optional(),
  /** …or the file's bytes in base64 (XLSX or CSV). */
  contentBase64: z.string().optional(),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.record(z.string(), z.string()).optional(),
  dryRun: z.boolean(),
  skipBadRows: z.boolean().optional(),
  enrol: z.boolean().optional(),
  basis: z.enum(LEGAL_BASES).optional(),
  evidence: z.string(),
}).refine((b) => (b.content === undefined) !== (b.contentBase64 === undefined), { message: 'send the file as content (CSV text) or contentBase64', path: ['content'] });

const fileQuery = z.object({
  fileName: z.string().min(1).max(255),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.string().max(4000).optional().describe('target=Column pairs separated by commas, e.g. household_id=ID hogar,phone=Celular'),
  dryRun: bool,
  skipBadRows: bool.optional(),
});

const transferImportBody = z.object({
  fileName: z.string().min(1).max(255),
  content: z.string().optional(),
  contentBase64: z.string().optional(),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.record(z.string(), z.string()).optional(),
  key: z.enum(['household_id', 'phone']).optional(),
  dryRun: z.boolean(),
  skipBadRows: z.boolean().optional(),
}).refine((b) => (b.content === undefined) !== (b.contentBase64 === undefined), { message: 'send the file as content (CSV text) or contentBase64', path: ['content'] });

const contentOf = (b: { content?: string; contentBase64?: string }): Uint8Array | string => (b.contentBase64 !== undefined ? fromBase64(b.contentBase64) : b.content!);

function sendFile(ctx: Ctx, f: { filename: string; contentType: string; body: Buffer }): Buffer {
  ctx.type = f.contentType;
  ctx.set('Content-Disposition', `attachment; filename="${f.filename}"`);
  ctx.set('Cache-Control', 'no-store');
  return f.body;
}

const sees = (ctx: Ctx, p: 'complaints.sensitive') => Boolean(ctx.state.permissions?.includes(p));

export function registerCashApi(api: Api): void {
  const tag = 'cash';
  // ------------------------------------------------------------------------------------ lists
  api.route({
    method: 'get', path: '/cash/lists', tag, summary: 'Beneficiary lists with their counts (candidates, enrolled, excluded, open duplicates)', permission: 'cash.manage',
    query: z.object({ archived: bool.optional() }),
    handler: async (ctx, { query }) => ({ data: await listLists(ctx.services.db.knex, { includeArchived: Boolean(query.archived) }) }),
  });
  api.route({
    method: 'post', path: '/cash/lists', tag, summary: 'Create a beneficiary list', permission: 'cash.manage', body: listInputSchema, status: 201,
    handler: async (ctx, { body }) => ({ data: await createList(ctx.services.db, ctx.state.actor!, body) }),
  });
  api.route({
    method: 'get', path: '/cash/lists/:id', tag, summary: 'One beneficiary list with its counts', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => ({ data: await getList(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'patch', path: '/cash/lists/:id', tag, summary: 'Rename, describe or archive ({"archived":true}) a list', permission: 'cash.manage', params: idParam, body: listPatchSchema,
    handler: async (ctx, { params, body }) => ({ data: await updateList(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });
  api.route({
    method: 'get', path: '/cash/lists/:id/beneficiaries', tag, summary: 'A list’s beneficiaries, newest first (filter by status, name/household id/number, admin1, open duplicates)', permission: 'cash.manage',
    params: idParam,
    query: z.object({ status: z.enum(BENEFICIARY_STATUSES).optional(), q: z.string().max(100).optional(), admin1: z.string().max(100).optional(), duplicates: bool.optional(), ...page }),
    handler: async (ctx, { params, query }) => {
      await getList(ctx.services.db.knex, params.id);
      const r = await listBeneficiaries(ctx.services.db.knex, params.id, query);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.beneficiaries.read', entityType: 'cash_list', entityId: params.id, detail: { results: r.data.length, searched: Boolean(query.q) } });
      return r;
    },
  });
  api.route({
    method: 'get', path: '/cash/beneficiaries/:id', tag, summary: 'One beneficiary', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => {
      const b = await getBeneficiary(ctx.services.db.knex, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.beneficiary.read', entityType: 'cash_beneficiary', entityId: b.id, detail: { listId: b.listId } });
      return { data: b };
    },
  });
  api.route({
    method: 'patch', path: '/cash/beneficiaries/:id', tag, summary: 'Rectify a beneficiary’s household details', permission: 'cash.manage', params: idParam, body: beneficiaryPatchSchema,
    handler: async (ctx, { params, body }) => ({ data: await updateBeneficiary(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });
  api.route({
    method: 'post', path: '/cash/lists/:id/status', tag, summary: 'Enrol, exclude (with a reason) or return to candidate: by ids, or all with a status ({"from":"candidate"}). Enrolment refuses open duplicates.', permission: 'cash.manage',
    params: idParam, body: statusChangeSchema,
    handler: async (ctx, { params, body }) => ({ data: await changeStatus(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });

  // ------------------------------------------------------------------------------- candidates
  api.route({
    method: 'post', path: '/cash/lists/:id/candidates/preview', tag, summary: 'How many contacts a segment, query or survey answers would add as candidates (cash_programme consent only)', permission: 'cash.manage',
    params: idParam, body: candidateSpecSchema,
    handler: async (ctx, { params, body }) => ({ data: await previewCandidates(ctx.services.db.knex, params.id, body) }),
  });
  api.route({
    method: 'post', path: '/cash/lists/:id/candidates', tag, summary: 'Add the contacts a segment, query or survey answers select as candidates (staff confirmed)', permission: 'cash.manage',
    params: idParam, body: candidateSpecSchema, status: 201,
    handler: async (ctx, { params, body }) => ({ data: await addCandidates(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });

  // ---------------------------------------------------------------------------------- imports
  api.route({
    method: 'post', path: '/cash/lists/:id/import', tag, summary: 'Import beneficiaries (CSV text or base64 CSV/XLSX): dry run, per-row errors, duplicates within the file and across lists', permission: 'cash.manage',
    params: idParam, body: beneficiaryImportBody,
    handler: async (ctx, { params, body }) => ({
      data: await importBeneficiaries(ctx.services, ctx.state.actor!, { ...body, listId: params.id, content: contentOf(body) }),
    }),
  });
  api.route({
    method: 'post', path: '/cash/lists/:id/import/file', tag, summary: 'Import beneficiaries from the request body as it is (Content-Type text/csv or the XLSX type); options in the query', permission: 'cash.manage',
    params: idParam,
    query: fileQuery.extend({ enrol: bool.optional(), basis: z.enum(LEGAL_BASES).optional(), evidence: z.string().max(2000) }),
    handler: async (ctx, { params, query }) => {
      const bytes = await readRawBody(ctx.req);
      return {
        data: await importBeneficiaries(ctx.services, ctx.state.actor!, {
          listId: params.id, fileName: query.fileName, format: query.format, mapping: query.mapping ? parseMappingText(query.mapping) : undefined, dryRun: query.dryRun,
          skipBadRows: query.skipBadRows, enrol: query.enrol, basis: query.basis, evidence: query.evidence, content: new Uint8Array(bytes),
        }),
      };
    },
  });
  api.route({
    method: 'get', path: '/cash/lists/:id/imports', tag, summary: 'The last imports into a list (counts only)', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => ({ data: await listImports(ctx.services.db.knex, { listId: params.id }) }),
  });

  // ------------------------------------------------------------------------------- duplicates
  api.route({
    method: 'get', path: '/cash/lists/:id/duplicates', tag, summary: 'Possible duplicates in a list (same number, household id or contact), with both records', permission: 'cash.manage',
    params: idParam, query: z.object({ status: z.enum(['open', 'resolved']).optional(), ...page }),
    handler: async (ctx, { params, query }) => {
      await getList(ctx.services.db.knex, params.id);
      const r = await listDuplicates(ctx.services.db.knex, params.id, query);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.duplicates.read', entityType: 'cash_list', entityId: params.id, detail: { results: r.data.length } });
      return r;
    },
  });
  api.route({
    method: 'post', path: '/cash/duplicates/:id/resolve', tag, summary: 'Resolve a possible duplicate: keep one (the other is excluded), keep both, or exclude both', permission: 'cash.manage',
    params: idParam, body: resolveSchema,
    handler: async (ctx, { params, body }) => {
      await getDuplicate(ctx.services.db.knex, params.id);
      return { data: await resolveDuplicate(ctx.services.db, ctx.state.actor!, params.id, body) };
    },
  });

  // ---------------------------------------------------------------------------------- exports
  api.route({
    method: 'get', path: '/cash/export-profiles', tag, summary: 'Export profiles: who gets a beneficiary file and which fields it carries', permission: 'cash.manage',
    handler: async () => ({ data: EXPORT_PROFILES }),
  });
  api.route({
    method: 'get', path: '/cash/lists/:id/export', tag, summary: 'A list’s beneficiaries as CSV or XLSX through an export profile (payment provider: household id, name, phone, amount)', permission: 'cash.manage',
    params: idParam, query: exportRequestSchema,
    handler: async (ctx, { params, query }) => sendFile(ctx, await exportBeneficiaries(ctx.services.db, ctx.state.actor!, params.id, query)),
  });

  // ---------------------------------------------------------------------------- distributions
  api.route({
    method: 'get', path: '/cash/distributions', tag, summary: 'Distributions (cash rounds) with transfer counts and PDM status', permission: 'reports.read',
    query: z.object({ listId: z.coerce.number().int().positive().optional(), ...page }),
    handler: async (ctx, { query }) => listDistributions(ctx.services.db.knex, query),
  });
  api.route({
    method: 'post', path: '/cash/distributions', tag, summary: 'Record a distribution: one pending transfer per enrolled beneficiary', permission: 'cash.manage', body: distributionInputSchema, status: 201,
    handler: async (ctx, { body }) => ({ data: await createDistribution(ctx.services.db, ctx.state.actor!, body) }),
  });
  api.route({
    method: 'get', path: '/cash/distributions/:id', tag, summary: 'One distribution', permission: 'reports.read', params: idParam,
    handler: async (ctx, { params }) => ({ data: await getDistribution(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'patch', path: '/cash/distributions/:id', tag, summary: 'Change a distribution’s name, date, provider or PDM settings (before the PDM starts)', permission: 'cash.manage',
    params: idParam, body: distributionPatchSchema,
    handler: async (ctx, { params, body }) => ({ data: await updateDistribution(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });
  api.route({
    method: 'post', path: '/cash/distributions/:id/transfers/sync', tag, summary: 'Add a pending transfer for beneficiaries enrolled since the distribution was recorded', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => {
      const added = await addEnrolled(ctx.services.db.knex, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.transfers.sync', entityType: 'cash_distribution', entityId: params.id, detail: { added } });
      return { data: { added } };
    },
  });
  api.route({
    method: 'get', path: '/cash/distributions/:id/transfers', tag, summary: 'A distribution’s transfer records, newest first', permission: 'cash.manage',
    params: idParam, query: z.object({ status: z.enum(TRANSFER_STATUSES).optional(), ...page }),
    handler: async (ctx, { params, query }) => {
      await getDistribution(ctx.services.db.knex, params.id);
      const r = await listTransfers(ctx.services.db.knex, params.id, query);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.transfers.read', entityType: 'cash_distribution', entityId: params.id, detail: { results: r.data.length } });
      return r;
    },
  });
  api.route({
    method: 'post', path: '/cash/distributions/:id/transfers/import', tag, summary: 'Import the provider’s payment report (keyed by household id or phone): dry run, per-row errors', permission: 'cash.manage',
    params: idParam, body: transferImportBody,
    handler: async (ctx, { params, body }) => ({ data: await importTransfers(ctx.services, ctx.state.actor!, { ...body, distributionId: params.id, content: contentOf(body) }) }),
  });
  api.route({
    method: 'post', path: '/cash/distributions/:id/transfers/import/file', tag, summary: 'Import the provider’s payment report from the request body as it is; options in the query', permission: 'cash.manage',
    params: idParam, query: fileQuery.extend({ key: z.enum(['household_id', 'phone']).optional() }),
    handler: async (ctx, { params, query }) => {
      const bytes = await readRawBody(ctx.req);
      return {
        data: await importTransfers(ctx.services, ctx.state.actor!, {
          distributionId: params.id, fileName: query.fileName, format: query.format, mapping: query.mapping ? parseMappingText(query.mapping) : undefined,
          key: query.key, dryRun: query.dryRun, skipBadRows: query.skipBadRows, content: new Uint8Array(bytes),
        }),
      };
    },
  });

  // ------------------------------------------------------------------------------------- PDM
  api.route({
    method: 'get', path: '/cash/distributions/:id/pdm/plan', tag, summary: 'The monitoring as it would start now: reachable recipients, sample size, the day it starts', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => ({ data: await pdmPlan(ctx.services.db.knex, ctx.services.config, params.id) }),
  });
  api.route({
    method: 'post', path: '/cash/distributions/:id/pdm/start', tag, summary: 'Start the monitoring now instead of on its day', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => {
      const r = await startPdmNow(ctx.services, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.pdm.start', entityType: 'cash_distribution', entityId: params.id, detail: { sent: r.sent, skipped: r.skipped } });
      return { data: r };
    },
  });
  api.route({
    method: 'get', path: '/cash/distributions/:id/report', tag, summary: 'The PDM report: response, indicators (rCSI and its phases), disaggregated by gender, age group and admin1 (aggregates only)', permission: 'reports.read', params: idParam,
    handler: async (ctx, { params }) => ({ data: await pdmReport(ctx.services.db.knex, ctx.services.config, params.id) }),
  });
  api.route({
    method: 'get', path: '/cash/distributions/:id/report/export', tag, summary: 'The PDM report as CSV or XLSX (aggregates only)', permission: 'reports.read',
    params: idParam, query: z.object({ format: z.enum(['csv', 'xlsx']).default('csv'), lang: z.enum(['en', 'es']).default('en') }),
    handler: async (ctx, { params, query }) => {
      const report = await pdmReport(ctx.services.db.knex, ctx.services.config, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.report.export', entityType: 'cash_distribution', entityId: params.id, detail: { format: query.format } });
      return sendFile(ctx, await reportFile(report, query.format, query.lang));
    },
  });
  api.route({
    method: 'get', path: '/cash/distributions/:id/follow-up', tag, summary: 'Recipients to call back: did not receive or not sure (and, for those who may see sensitive cases, asked to pay)', permission: 'cash.manage', params: idParam,
    handler: async (ctx, { params }) => {
      await getDistribution(ctx.services.db.knex, params.id);
      const data = await followUpList(ctx.services.db.knex, params.id, { sensitive: sees(ctx, 'complaints.sensitive') });
      await audit(ctx.services.db, ctx.state.actor!, { action: 'cash.followup.read', entityType: 'cash_distribution', entityId: params.id, detail: { results: data.length } });
      return { data };
    },
  });
  api.route({
    method: 'get', path: '/cash/sample-size', tag, summary: 'PDM sample size for a population, confidence and margin (Cochran, p = 0.5, finite population correction)', permission: 'reports.read',
    query: z.object({ population: z.coerce.number().int().min(0).max(100_000_000), confidence: z.coerce.number().min(50).max(99.9).default(95), margin: z.coerce.number().min(0.5).max(50).default(5) }),
    handler: async (_ctx, { query }) => {
      const r = sampleSize(query);
      return { data: { population: query.population, confidence: query.confidence, margin: query.margin, sampleSize: r.n, n0: Math.round(r.n0 * 100) / 100, z: Math.round(r.z * 10000) / 10000 } };
    },
  });
}

