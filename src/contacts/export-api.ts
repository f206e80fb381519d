/**
 * Exports over HTTP: GET /api/v1/exports?list=KEY|segment=KEY|query=…&columns=phone,name,region&format=csv|xlsx
 * answers the file itself (Content-Disposition: attachment). The console has /exports (a form
 * choosing the list or segment, the columns and the format) and /exports/download. Both need
 * contacts.export and are audited.
 */
import Router from '@koa/router';
import { z } from 'zod';
import type { Api } from '../http/api.js';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { BASE_COLUMNS, DEFAULT_COLUMNS, EXPORT_FORMATS, exportContacts, type ExportFile } from './export.js';
import { listFields } from './fields.js';
import { listSegments } from './segments/index.js';
import { MAX_QUERY_LENGTH } from './segments/parser.js';

const key = z.string().trim().min(1).max(64);
const exportQuery = z.object({
  list: key.optional(),
  segment: key.optional(),
  query: z.string().max(MAX_QUERY_LENGTH).optional(),
  columns: z.union([z.string().max(2000), z.array(z.string().max(64))]).optional(),
  format: z.enum(EXPORT_FORMATS).default('csv'),
  active_only: z.enum(['true', 'false', '1', '0']).optional(),
});

function request(q: z.infer<typeof exportQuery>) {
  const columns = q.columns === undefined ? undefined : (Array.isArray(q.columns) ? q.columns : q.columns.split(',')).map((c) => c.trim()).filter(Boolean);
  return { list: q.list || undefined, segment: q.segment || undefined, query: q.query?.trim() || undefined, columns, format: q.format, activeOnly: q.active_only === 'true' || q.active_only === '1' };
}

function send(ctx: Ctx, file: ExportFile): Buffer {
  ctx.type = file.contentType;
  ctx.set('Content-Disposition', `attachment; filename="${file.fileName.replace(/[^A-Za-z0-9._-]/g, '_')}"`);
  ctx.set('Cache-Control', 'no-store');
  ctx.set('X-Export-Rows', String(file.rows));
  return file.body;
}

export function registerExportsApi(api: Api): void {
  api.route({
    method: 'get', path: '/exports', tag: 'exports', permission: 'contacts.export',
    summary: 'Export the contacts of a list and/or segment as CSV or XLSX (the file itself; audited). columns: comma-separated, from id, phone, whatsapp, sms, name, language, timezone, status, created, last_seen, joined and the custom field keys',
    query: exportQuery,
    handler: async (ctx, { query }) => send(ctx, await exportContacts(ctx.services.db, ctx.state.actor!, request(query))),
  });
}

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);

export function exportsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();

  const page = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const knex = ctx.services.db.knex;
    const fields = await listFields(knex);
    const lists = await knex('lists').orderBy('name').select('key', 'name');
    const segments = (await listSegments(knex, { limit: 500 })).data;
    const chosen = new Set(typeof ctx.query.columns === 'string' ? ctx.query.columns.split(',') : [...DEFAULT_COLUMNS, ...fields.map((f) => f.key)]);
    const columns = [...BASE_COLUMNS, ...fields.map((f) => f.key)].map((c) => ({ name: c, checked: chosen.has(c) }));
    render(ctx, renderer, 'exports/index', {
      title: 'nav.exports',
      lists,
      segments,
      columns,
      list: typeof ctx.query.list === 'string' ? ctx.query.list : '',
      segment: typeof ctx.query.segment === 'string' ? ctx.query.segment : '',
      formats: EXPORT_FORMATS,
      ...extra,
    }, status);
  };

  r.get('/exports', needs('contacts.export'), h((ctx) => page(ctx)));

  r.get('/exports/download', needs('contacts.export'), h(async (ctx) => {
    // Checkboxes arrive as repeated "columns" parameters.
    const raw = { ...ctx.query, columns: Array.isArray(ctx.query.columns) ? ctx.query.columns.join(',') : ctx.query.columns };
    const parsed = exportQuery.safeParse(raw);
    if (!parsed.success) return page(ctx, { errors: Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])) }, 400);
    try {
      ctx.body = send(ctx, await exportContacts(ctx.services.db, ctx.state.actor!, request(parsed.data)));
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) {
        // Only the messages: a segment error's details also carry its position as an object.
        const errors = Object.fromEntries(Object.entries(e.details ?? { request: e.message }).filter(([, v]) => typeof v === 'string'));
        return page(ctx, { errors }, 400);
      }
      throw e;
    }
  }));

  return r;
}
