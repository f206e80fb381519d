/**
 * The versioned JSON API under /api/v1. Each route is declared once with zod schemas for its
 * params, query and body; the same declaration validates requests and writes the OpenAPI 3
 * document served at /api/v1/openapi.json.
 */
import Router from '@koa/router';
import { z, type ZodType } from 'zod';
import type { Ctx, AppState } from './context.js';
import { HttpError, validationError, forbidden, unauthorized } from './errors.js';
import type { Permission } from '../staff/roles.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** Koa path below /api/v1, with :params. */
  path: string;
  summary: string;
  tag: string;
  /** null means any signed-in caller; 'public' means no authentication. */
  permission: Permission | null | 'public';
  params?: ZodType<P>;
  query?: ZodType<Q>;
  body?: ZodType<B>;
  response?: ZodType;
  /** Status of a successful response (default 200; 204 sends no body). */
  status?: number;
  handler: (ctx: Ctx, input: RouteInput<P, Q, B>) => Promise<unknown>;
}

export const API_PREFIX = '/api/v1';

export class Api {
  readonly router = new Router<AppState>({ prefix: API_PREFIX });
  private readonly specs: RouteSpec<any, any, any>[] = [];

  route<P = Record<string, never>, Q = Record<string, never>, B = undefined>(spec: RouteSpec<P, Q, B>): void {
    this.specs.push(spec);
    this.router[spec.method](spec.path, async (koaCtx) => {
      const ctx = koaCtx as unknown as Ctx;
      if (spec.permission !== 'public') {
        if (!ctx.state.actor) throw unauthorized();
        if (spec.permission && !ctx.state.permissions?.includes(spec.permission)) throw forbidden();
      }
      const input = {
        params: parse(spec.params, ctx.params, 'params'),
        query: parse(spec.query, ctx.query, 'query'),
        body: parse(spec.body, (ctx.request as { body?: unknown }).body, 'body'),
      } as RouteInput<P, Q, B>;
      const result = await spec.handler(ctx, input);
      const status = spec.status ?? 200;
      ctx.status = status;
      if (status !== 204) ctx.body = result ?? {};
    });
  }

  /** The OpenAPI 3.0 document for every declared route. */
  openapi(info: { title: string; version: string; serverUrl: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const s of this.specs) {
      const path = s.path.replace(/:([A-Za-z_]\w*)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, schema] of [['path', s.params], ['query', s.query]] as const) {
        if (!schema) continue;
        const json = toSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, prop] of Object.entries(json.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: prop });
        }
      }
      const op: Record<string, unknown> = {
        summary: s.summary,
        tags: [s.tag],
        operationId: `${s.method}${path.replace(/[{}]/g, '').split('/').map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('')}`,
        parameters,
        responses: {
          [String(s.status ?? 200)]: s.status === 204
            ? { description: 'Done' }
            : { description: 'Success', content: s.response ? { 'application/json': { schema: toSchema(s.response, 'output') } } : undefined },
          '400': { $ref: '#/components/responses/Error' },
          ...(s.permission === 'public' ? {} : { '401': { $ref: '#/components/responses/Error' }, '403': { $ref: '#/components/responses/Error' } }),
        },
      };
      if (s.permission !== 'public') {
        op.security = [{ bearerAuth: [] }, { cookieAuth: [] }];
        if (s.permission) op['x-permission'] = s.permission;
      }
      if (s.body) op.requestBody = { required: true, content: { 'application/json': { schema: toSchema(s.body, 'input') } } };
      (paths[API_PREFIX + path] ??= {})[s.method] = op;
    }
    return {
      openapi: '3.0.3',
      info: { title: info.title, version: info.version },
      servers: [{ url: info.serverUrl }],
      paths,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API token created with `ayni tokens create` or on the console' },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: 'ayni_session', description: 'Console session; unsafe methods also need the X-CSRF-Token header' },
        },
        schemas: { Error: toSchema(errorSchema, 'output') },
        responses: { Error: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
      },
    };
  }

  get routes(): readonly RouteSpec<any, any, any>[] {
    return this.specs;
  }
}

export const errorSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
    requestId: z.string().optional(),
  }),
});

function parse<T>(schema: ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (!r.success) throw validationError(r.error, where);
  return r.data;
}

function toSchema(schema: ZodType, io: 'input' | 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown>;
}

/** Coerces a query-string number. */
export const queryInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
export const idParam = z.object({ id: z.coerce.number().int().positive() });

export { HttpError };
