/**
 * Imports over HTTP.
 *
 * POST /api/v1/imports takes the file in one of two ways:
 *  - as the request body itself, `Content-Type: text/csv` (or text/plain) or the XLSX type
 *    (application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, or
 *    application/octet-stream with format=xlsx), with the options in the query string
 *    (list, file_name, basis, evidence, map=phone=Telefono,name=Nombre, dry_run, skip_bad_rows,
 *    channels=whatsapp,sms). The body is read as a stream up to IMPORT_MAX_BYTES (64 MiB, about
 *    1.5 million CSV rows): files are far larger than the JSON limit (BODY_LIMIT_KB) that guards
 *    every other route, and streaming them needs no multipart parser.
 *  - as JSON {list, file_name, content (CSV text) | content_base64 (CSV or XLSX bytes), mapping,
 *    basis, evidence, dry_run, skip_bad_rows, channels}, within BODY_LIMIT_KB: convenient for
 *    small files and scripts.
 * A dry run or a commit answers 200 with the report (its status says dry_run or committed); a
 * commit refused because of bad rows 422 import_rejected with the report in details.report; a
 * request that cannot start 400 import_invalid, naming the field.
 *
 * Console: /imports (form with a file picker or pasted CSV, mapping, basis, evidence; the
 * dry-run report; history).
 */
import Router from '@koa/router';
import { z } from 'zod';
import { Api, idParam } from '../http/api.js';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError, validationError } from '../http/errors.js';
import { needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { LEGAL_BASES } from './consent.js';
import { BUILT_IN_TARGETS, MEDIA, getImport, listImports, parseMappingText, runImport, type ImportReport, type ImportRequest } from './import.js';
import { XLSX_TYPE } from './import-read.js';
import { listFields } from './fields.js';

/** The largest file accepted as a raw request body. */
export const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])]).transform((v) => v === true || v === 'true' || v === '1' || v === 'yes' || v === 'on');
const mappingInput = z.union([z.record(z.string(), z.string()), z.string().max(4000)]).optional();
const channels = z.union([z.array(z.enum(MEDIA)), z.string()]).optional();

const common = {
  list: z.union([z.string().trim().min(1).max(64), z.number().int().positive()]),
  file_name: z.string().trim().min(1).max(255).optional(),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: mappingInput,
  map: z.string().max(4000).optional(),
  basis: z.enum(LEGAL_BASES).optional(),
  evidence: z.string().max(2000),
  dry_run: bool.optional(),
  skip_bad_rows: bool.optional(),
  channels,
};
const jsonBody = z
  .object({ ...common, content: z.string().optional(), content_base64: z.string().optional() })
  .refine((b) => (b.content === undefined) !== (b.content_base64 === undefined), { message: 'send the file as content (CSV text) or as content_base64, one of the two', path: ['content'] });
const rawQuery = z.object(common);

function toMedia(v: z.infer<typeof channels>): ImportRequest['media'] {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((m) => !(MEDIA as readonly string[]).includes(m));
  if (bad.length) throw new HttpError(400, 'validation_failed', 'The request is not valid', { channels: `${bad.join(', ')}: channels are whatsapp and sms` });
  return list as ImportRequest['media'];
}

function toMapping(mapping: z.infer<typeof mappingInput>, map?: string): Record<string, string> | undefined {
  if (map) return parseMappingText(map);
  if (typeof mapping === 'string') return mapping.trim() ? parseMappingText(mapping) : undefined;
  return mapping;
}

/** Reads the raw request body, refusing more than `limit` bytes. */
async function readBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw new HttpError(413, 'payload_too_large', `The file is larger than ${Math.round(limit / 1024 / 1024)} MiB: split it`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      ctx.req.destroy();
      throw new HttpError(413, 'payload_too_large', `The file is larger than ${Math.round(limit / 1024 / 1024)} MiB: split it`);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function parseOr400<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(r.error, where);
  return r.data;
}

/** The import request from either kind of POST. */
async function requestFrom(ctx: Ctx): Promise<ImportRequest> {
  if (ctx.request.is('json')) {
    const b = parseOr400(jsonBody, (ctx.request as { body?: unknown }).body, 'body');
    const content = b.content_base64 !== undefined ? new Uint8Array(Buffer.from(b.content_base64, 'base64')) : b.content!;
    return {
      list: b.list,
      fileName: b.file_name ?? (b.format === 'xlsx' ? 'upload.xlsx' : 'upload.csv'),
      format: b.format,
      content,
      mapping: toMapping(b.mapping, b.map),
      basis: b.basis,
      evidence: b.evidence,
      dryRun: b.dry_run ?? false,
      skipBadRows: b.skip_bad_rows ?? false,
      media: toMedia(b.channels),
    };
  }
  const type = ctx.request.type;
  const isXlsx = type === XLSX_TYPE;
  if (!isXlsx && type !== 'text/csv' && type !== 'text/plain' && type !== 'application/octet-stream' && type !== 'application/csv') {
    throw new HttpError(415, 'unsupported_media_type', `Send the file as text/csv, ${XLSX_TYPE} or application/octet-stream (with format=xlsx), or as JSON`);
  }
  const q = parseOr400(rawQuery, ctx.query, 'query');
  const bytes = await readBody(ctx, IMPORT_MAX_BYTES);
  const format = q.format ?? (isXlsx ? 'xlsx' : undefined);
  return {
    list: q.list,
    fileName: q.file_name ?? (format === 'xlsx' ? 'upload.xlsx' : 'upload.csv'),
    format,
    content: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    mapping: toMapping(q.mapping, q.map),
    basis: q.basis,
    evidence: q.evidence,
    dryRun: q.dry_run ?? false,
    skipBadRows: q.skip_bad_rows ?? false,
    media: toMedia(q.channels),
  };
}

export function registerImportsApi(api: Api): void {
  api.route({
    method: 'post', path: '/imports', tag: 'imports', permission: 'contacts.write', status: 200,
    summary:
      'Import contacts into a list from CSV or XLSX: the file as the body (text/csv or the XLSX type; options in the query string: list, file_name, basis, evidence, map, dry_run, skip_bad_rows, channels) or JSON with content / content_base64. Dry run or commit → 200 with the report; commit refused for bad rows → 422 import_rejected with details.report.',
    handler: async (ctx) => {
      const req = await requestFrom(ctx);
      const report = await runImport(ctx.services, ctx.state.actor!, req);
      if (report.status === 'failed') {
        throw new HttpError(422, 'import_rejected', `${report.rows.bad} row(s) are not valid: nothing was imported. Correct them, or ask to skip bad rows.`, { report });
      }
      return { data: report };
    },
  });
  api.route({
    method: 'get', path: '/imports', tag: 'imports', summary: 'Past imports and dry runs, newest first', permission: 'contacts.read',
    query: z.object({ before: z.coerce.number().int().positive().optional(), limit: z.coerce.number().int().min(1).max(200).optional() }),
    handler: async (ctx, { query }) => listImports(ctx.services.db.knex, query),
  });
  api.route({
    method: 'get', path: '/imports/:id', tag: 'imports', summary: 'One import', permission: 'contacts.read',
    params: idParam,
    handler: async (ctx, { params }) => ({ data: await getImport(ctx.services.db.knex, params.id) }),
  });
}

// ------------------------------------------------------------------------------------ console

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);

/** Bad rows shown on the page; the counts and the API give all of them. */
const PAGE_ERRORS = 1000;

export function importsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();

  const page = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const knex = ctx.services.db.knex;
    const before = Number(ctx.query.before) || undefined;
    const history = await listImports(knex, { before, limit: 20 });
    const lists = await knex('lists').whereNull('archived_at').orderBy('name').select('key', 'name');
    const fields = await listFields(knex);
    render(ctx, renderer, 'imports/index', {
      title: 'nav.imports',
      history: history.data,
      nextBefore: history.next,
      lists,
      bases: LEGAL_BASES,
      targets: [...BUILT_IN_TARGETS, ...fields.map((f) => f.key)],
      canWrite: ctx.state.permissions?.includes('contacts.write') ?? false,
      form: { basis: 'consent', whatsapp: true, sms: true },
      maxKb: ctx.services.config.BODY_LIMIT_KB,
      ...extra,
    }, status);
  };

  r.get('/imports', needs('contacts.read'), h((ctx) => page(ctx)));

  r.post('/imports', needs('contacts.write'), h(async (ctx) => {
    const b = (ctx.request.body ?? {}) as Record<string, string | string[]>;
    const one = (k: string) => (Array.isArray(b[k]) ? String((b[k] as string[])[0]) : typeof b[k] === 'string' ? (b[k] as string) : '');
    const form = {
      list: one('list'),
      basis: one('basis'),
      evidence: one('evidence'),
      mapping: one('mapping'),
      file_name: one('file_name'),
      content: one('content'),
      content_base64: one('content_base64'),
      skip_bad_rows: one('skip_bad_rows') === 'true',
      whatsapp: one('whatsapp') === 'true',
      sms: one('sms') === 'true',
    };
    const dryRun = one('action') !== 'commit';
    let report: ImportReport | undefined;
    try {
      const content = form.content_base64 ? new Uint8Array(Buffer.from(form.content_base64, 'base64')) : form.content;
      if (content.length === 0) throw new HttpError(400, 'import_invalid', 'The import cannot start', { file: 'choose a file, or paste the CSV text' });
      const media = [...(form.whatsapp ? ['whatsapp' as const] : []), ...(form.sms ? ['sms' as const] : [])];
      report = await runImport(ctx.services, ctx.state.actor!, {
        list: form.list,
        fileName: form.file_name || 'pasted.csv',
        content,
        mapping: form.mapping.trim() ? parseMappingText(form.mapping) : undefined,
        basis: (LEGAL_BASES as readonly string[]).includes(form.basis) ? (form.basis as ImportRequest['basis']) : undefined,
        evidence: form.evidence,
        dryRun,
        skipBadRows: form.skip_bad_rows,
        media: media.length ? media : undefined,
      });
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) return page(ctx, { form, errors: e.details ?? { request: e.message } }, 400);
      throw e;
    }
    const shown = { ...report, errors: report.errors.slice(0, PAGE_ERRORS), more: Math.max(0, report.errors.length - PAGE_ERRORS) };
    await page(ctx, { form, report: shown, isDryRun: report.status === 'dry_run', isCommitted: report.status === 'committed', isFailed: report.status === 'failed' }, report.status === 'failed' ? 422 : report.status === 'committed' ? 201 : 200);
  }));

  return r;
}
