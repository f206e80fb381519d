/**
 * Segments over HTTP: /api/v1/segments (CRUD, live counts, the fields a query can use) and the
 * console pages /segments (list, create with a query box and live count, detail, edit, delete).
 * Reading and counting needs contacts.read; saving, changing and deleting needs lists.manage.
 */
import Router from '@koa/router';
import { z } from 'zod';
import { Api, idParam } from '../http/api.js';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import {
  BUILT_IN,
  CONSENT_PURPOSES,
  MEDIA,
  SegmentError,
  countQuery,
  createSegment,
  deleteSegment,
  getSegment,
  listSegments,
  loadCatalog,
  segmentHttpError,
  segmentInput,
  segmentPatch,
  updateSegment,
  type Segment,
  type SegmentCount,
} from './segments/index.js';
import { MAX_QUERY_LENGTH } from './segments/parser.js';

const segmentOut = z.object({ id: z.number(), key: z.string(), name: z.string(), query: z.string(), createdById: z.number().nullable(), createdAt: z.string(), updatedAt: z.string() });
const countOut = z.object({ total: z.number(), active: z.number() });

const json = (s: Segment) => ({ ...s, createdAt: s.createdAt.toISOString(), updatedAt: s.updatedAt.toISOString() });

/** Counts query text; a query that does not compile becomes a 400 with its position. */
async function count(ctx: Ctx, query: string): Promise<SegmentCount> {
  try {
    return await countQuery(ctx.services.db.knex, query);
  } catch (e) {
    if (e instanceof SegmentError) throw segmentHttpError(e);
    throw e;
  }
}

/** What a query can name: built-in attributes, custom fields, list keys, purposes, channels. */
async function vocabulary(ctx: Ctx) {
  const catalog = await loadCatalog(ctx.services.db.knex);
  return {
    builtIn: BUILT_IN.map((a) => ({ name: a.name, type: 'type' in a ? a.type : a.kind, help: a.help, choices: a.kind === 'status' ? [...a.choices] : null })),
    custom: [...catalog.custom.values()].map((f) => ({ name: f.key, label: f.label, type: f.type, choices: f.choices })),
    lists: [...catalog.lists.keys()].sort(),
    purposes: [...CONSENT_PURPOSES],
    channels: [...MEDIA],
  };
}

export function registerSegmentsApi(api: Api): void {
  api.route({
    method: 'get', path: '/segments', tag: 'segments', summary: 'Saved segments, by name', permission: 'contacts.read',
    query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50), offset: z.coerce.number().int().min(0).default(0), search: z.string().max(100).optional() }),
    response: z.object({ data: z.array(segmentOut), total: z.number() }),
    handler: async (ctx, { query }) => {
      const r = await listSegments(ctx.services.db.knex, query);
      return { data: r.data.map(json), total: r.total };
    },
  });
  api.route({
    method: 'get', path: '/segments/fields', tag: 'segments', summary: 'What a segment query can use: fields, lists, purposes, channels', permission: 'contacts.read',
    handler: async (ctx) => ({ data: await vocabulary(ctx) }),
  });
  api.route({
    method: 'post', path: '/segments/count', tag: 'segments',
    summary: 'Live count of contacts matching query text; an invalid query gives 400 segment_invalid with details.position {offset, line, column, length} and details.suggestion',
    permission: 'contacts.read',
    body: z.object({ query: z.string().max(MAX_QUERY_LENGTH) }),
    response: countOut,
    handler: async (ctx, { body }) => count(ctx, body.query),
  });
  api.route({
    method: 'post', path: '/segments', tag: 'segments', summary: 'Save a segment (the query is checked first)', permission: 'lists.manage',
    body: segmentInput, status: 201,
    response: z.object({ data: segmentOut, count: countOut }),
    handler: async (ctx, { body }) => {
      const s = await createSegment(ctx.services.db, ctx.state.actor!, body);
      return { data: json(s), count: await count(ctx, s.query) };
    },
  });
  api.route({
    method: 'get', path: '/segments/:id', tag: 'segments', summary: 'A saved segment with its live count', permission: 'contacts.read',
    params: idParam, response: z.object({ data: segmentOut, count: countOut }),
    handler: async (ctx, { params }) => {
      const s = await getSegment(ctx.services.db.knex, params.id);
      return { data: json(s), count: await count(ctx, s.query) };
    },
  });
  api.route({
    method: 'get', path: '/segments/:id/count', tag: 'segments', summary: 'Live count of a saved segment', permission: 'contacts.read',
    params: idParam, response: countOut,
    handler: async (ctx, { params }) => count(ctx, (await getSegment(ctx.services.db.knex, params.id)).query),
  });
  api.route({
    method: 'patch', path: '/segments/:id', tag: 'segments', summary: 'Change a segment', permission: 'lists.manage',
    params: idParam, body: segmentPatch, response: z.object({ data: segmentOut }),
    handler: async (ctx, { params, body }) => ({ data: json(await updateSegment(ctx.services.db, ctx.state.actor!, params.id, body)) }),
  });
  api.route({
    method: 'delete', path: '/segments/:id', tag: 'segments', summary: 'Delete a segment', permission: 'lists.manage',
    params: idParam, status: 204,
    handler: async (ctx, { params }) => {
      await deleteSegment(ctx.services.db, ctx.state.actor!, params.id);
    },
  });
}

// ------------------------------------------------------------------------------------ console

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string>;
const PAGE = 50;

/** The query's error for the page: message, the line of the query it is on and a caret under the place. */
function errorView(query: string, e: SegmentError) {
  const line = query.split('\n')[e.position.line - 1] ?? '';
  return {
    message: e.display,
    suggestion: e.suggestion ?? null,
    line,
    caret: ' '.repeat(Math.max(0, e.position.column - 1)) + '^'.repeat(Math.max(1, Math.min(e.position.length, line.length - e.position.column + 1))),
    column: e.position.column,
    lineNo: e.position.line,
  };
}

/** Counts for the page: the count, or the error shown under the query box. */
async function tryCount(ctx: Ctx, query: string): Promise<{ count?: SegmentCount; queryError?: ReturnType<typeof errorView> }> {
  try {
    return { count: await countQuery(ctx.services.db.knex, query) };
  } catch (e) {
    if (e instanceof SegmentError) return { queryError: errorView(query, e) };
    throw e;
  }
}

export function segmentsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);
  const perms = (ctx: Ctx) => ({ canManage: ctx.state.permissions?.includes('lists.manage') ?? false, canExport: ctx.state.permissions?.includes('contacts.export') ?? false });

  const listPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const offset = Math.max(0, Number(ctx.query.offset) || 0);
    const search = typeof ctx.query.search === 'string' ? ctx.query.search.slice(0, 100) : '';
    const { data, total } = await listSegments(ctx.services.db.knex, { limit: PAGE, offset, search: search || undefined });
    const more = (o: number) => new URLSearchParams({ ...(search ? { search } : {}), offset: String(o) }).toString();
    view(ctx, 'segments/index', {
      title: 'nav.segments',
      segments: data,
      total,
      search,
      next: offset + PAGE < total ? more(offset + PAGE) : null,
      prev: offset > 0 ? more(Math.max(0, offset - PAGE)) : null,
      vocabulary: await vocabulary(ctx),
      ...perms(ctx),
      ...extra,
    }, status);
  };

  r.get('/segments', needs('contacts.read'), h((ctx) => listPage(ctx)));

  // Plain GET form: counts the query in the box and shows the result (or the error) under it.
  r.get('/segments/count', needs('contacts.read'), h(async (ctx) => {
    const query = typeof ctx.query.query === 'string' ? ctx.query.query.slice(0, MAX_QUERY_LENGTH) : '';
    const form = { query, key: typeof ctx.query.key === 'string' ? ctx.query.key : '', name: typeof ctx.query.name === 'string' ? ctx.query.name : '' };
    const result = await tryCount(ctx, query);
    await listPage(ctx, { form, ...result, counted: true }, result.queryError ? 400 : 200);
  }));

  r.post('/segments', needs('lists.manage'), h(async (ctx) => {
    const b = body(ctx);
    const form = { key: b.key ?? '', name: b.name ?? '', query: b.query ?? '' };
    if (b.action === 'count') {
      const result = await tryCount(ctx, form.query);
      return listPage(ctx, { form, ...result, counted: true }, result.queryError ? 400 : 200);
    }
    const parsed = segmentInput.safeParse(form);
    if (!parsed.success) {
      return listPage(ctx, { form, errors: Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])) }, 400);
    }
    const checked = await tryCount(ctx, parsed.data.query);
    if (checked.queryError) return listPage(ctx, { form, ...checked }, 400);
    try {
      const s = await createSegment(ctx.services.db, ctx.state.actor!, parsed.data);
      flash(ctx, 'flash.saved');
      ctx.redirect(`/segments/${s.id}`);
    } catch (e) {
      if (e instanceof HttpError && e.status === 409) return listPage(ctx, { form, errors: e.details }, 409);
      throw e;
    }
  }));

  const detailPage = async (ctx: Ctx, id: number, extra: Record<string, unknown> = {}, status = 200) => {
    const segment = await getSegment(ctx.services.db.knex, id);
    const form = (extra.form as Record<string, string> | undefined) ?? { key: segment.key, name: segment.name, query: segment.query };
    const result = extra.queryError || extra.count ? {} : await tryCount(ctx, segment.query);
    view(ctx, 'segments/detail', { title: 'nav.segments', segment, form, ...result, vocabulary: await vocabulary(ctx), ...perms(ctx), ...extra }, status);
  };

  const idOf = (ctx: Ctx) => {
    const id = Number(ctx.params.id);
    if (!Number.isInteger(id) || id <= 0) throw new HttpError(404, 'not_found', 'There is no such segment');
    return id;
  };

  r.get('/segments/:id', needs('contacts.read'), h((ctx) => detailPage(ctx, idOf(ctx))));

  r.post('/segments/:id', needs('lists.manage'), h(async (ctx) => {
    const id = idOf(ctx);
    const b = body(ctx);
    const form = { key: b.key ?? '', name: b.name ?? '', query: b.query ?? '' };
    if (b.action === 'count') {
      const result = await tryCount(ctx, form.query);
      return detailPage(ctx, id, { form, ...result }, result.queryError ? 400 : 200);
    }
    const parsed = segmentInput.safeParse(form);
    if (!parsed.success) return detailPage(ctx, id, { form, errors: Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.'), i.message])) }, 400);
    const checked = await tryCount(ctx, parsed.data.query);
    if (checked.queryError) return detailPage(ctx, id, { form, ...checked }, 400);
    try {
      await updateSegment(ctx.services.db, ctx.state.actor!, id, parsed.data);
    } catch (e) {
      if (e instanceof HttpError && e.status === 409) return detailPage(ctx, id, { form, errors: e.details }, 409);
      throw e;
    }
    flash(ctx, 'flash.saved');
    ctx.redirect(`/segments/${id}`);
  }));

  r.post('/segments/:id/delete', needs('lists.manage'), h(async (ctx) => {
    await deleteSegment(ctx.services.db, ctx.state.actor!, idOf(ctx));
    flash(ctx, 'flash.deleted');
    ctx.redirect('/segments');
  }));

  return r;
}
