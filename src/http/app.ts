/**
 * The Koa application: request ids, error envelope, security headers, body limits (keeping the
 * raw body for webhook signatures), health checks, webhooks, the JSON API and the console.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Koa from 'koa';
import Router, { type RouterMiddleware } from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import helmet from 'koa-helmet';
import type { AppState, Ctx, Services } from './context.js';
import { Api, API_PREFIX } from './api.js';
import { HttpError, toEnvelope } from './errors.js';
import { authenticate, csrfProtect } from './auth.js';
import { modules } from './modules.js';
import { Renderer } from '../console/render.js';
import { render as renderPage } from '../console/page.js';
import { ping } from '../db/orm.js';
import { errorForLog } from '../log.js';
import { ROOT, TEMPLATES } from '../paths.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Files served under /static/: the console's stylesheet and the charting library from node_modules. */
const STATIC: Record<string, { file: string; type: string }> = {
  'console.css': { file: join(TEMPLATES, 'console', 'static', 'console.css'), type: 'text/css' },
  'chart.umd.js': { file: join(ROOT, 'node_modules', 'chart.js', 'dist', 'chart.umd.js'), type: 'text/javascript' },
  'survey-charts.js': { file: join(TEMPLATES, 'console', 'static', 'survey-charts.js'), type: 'text/javascript' },
  'segments.js': { file: join(TEMPLATES, 'console', 'static', 'segments.js'), type: 'text/javascript' },
  'imports.js': { file: join(TEMPLATES, 'console', 'static', 'imports.js'), type: 'text/javascript' },
  'dashboard-charts.js': { file: join(TEMPLATES, 'console', 'static', 'dashboard-charts.js'), type: 'text/javascript' },
  'simulator.js': { file: join(TEMPLATES, 'console', 'static', 'simulator.js'), type: 'text/javascript' },
};

export interface BuiltApp {
  app: Koa<AppState>;
  api: Api;
  renderer: Renderer;
}

export function createApp(services: Services): BuiltApp {
  const app = new Koa<AppState>({ proxy: true });
  app.context.services = services;
  const { config, log } = services;
  const renderer = new Renderer();
  const api = new Api();

  app.use(async (koaCtx, next) => {
    const ctx = koaCtx as unknown as Ctx;
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = /^[A-Za-z0-9._-]{8,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    const started = performance.now();
    try {
      await next();
    } catch (err) {
      const { status, body, expected } = toEnvelope(err, ctx.state.requestId);
      if (!expected) log.error({ error: errorForLog(err), requestId: ctx.state.requestId }, 'request failed');
      const wantsHtml = !ctx.path.startsWith(API_PREFIX) && !ctx.path.startsWith('/webhooks') && ctx.accepts('json', 'html') === 'html';
      if (wantsHtml) {
        renderPage(ctx, renderer, 'error', { title: `error.title.${status}`, heading: `error.title.${status}`, message: body.error.message, requestId: ctx.state.requestId }, status);
      } else {
        ctx.status = status;
        ctx.body = body;
      }
    } finally {
      // Route patterns only: paths can carry secrets (Africa's Talking) and query strings can carry numbers.
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? '(unmatched)';
      log.info({ requestId: ctx.state.requestId, method: ctx.method, route, status: ctx.status, ms: Math.round(performance.now() - started) }, 'request');
    }
  });

  app.use(
    helmet({
      contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], formAction: ["'self'"], frameAncestors: ["'none'"], upgradeInsecureRequests: config.COOKIE_SECURE ? [] : null } },
      strictTransportSecurity: config.COOKIE_SECURE,
    }) as unknown as Koa.Middleware<AppState>,
  );

  const limit = `${config.BODY_LIMIT_KB}kb`;
  app.use(bodyParser({ enableTypes: ['json', 'form'], jsonLimit: limit, formLimit: limit, encoding: 'utf-8' }) as unknown as Koa.Middleware<AppState>);

  const base = new Router<AppState>();
  base.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok', version: VERSION };
  });
  base.get('/readyz', async (koaCtx) => {
    const ok = await ping(services.db);
    koaCtx.status = ok ? 200 : 503;
    koaCtx.body = { status: ok ? 'ready' : 'unavailable', database: ok ? 'ok' : 'unreachable' };
  });
  base.get('/static/:file', (ctx) => {
    const entry = STATIC[ctx.params.file];
    if (!entry) return;
    ctx.type = entry.type;
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = readFileSync(entry.file);
  });
  base.get(`${API_PREFIX}/openapi.json`, (ctx) => {
    ctx.body = api.openapi({ title: 'Ayni API', version: VERSION, serverUrl: config.PUBLIC_URL });
  });
  app.use(base.routes());

  for (const m of modules) if (m.open) app.use(m.open().routes());

  app.use(authenticate() as unknown as Koa.Middleware<AppState>);

  for (const m of modules) m.api?.(api);
  app.use(async (koaCtx, next) => {
    const ctx = koaCtx as unknown as Ctx;
    if (ctx.path.startsWith(API_PREFIX + '/') && ctx.state.session) return csrfProtect()(ctx, next);
    return next();
  });
  app.use(api.router.routes());
  app.use(api.router.allowedMethods());

  const consoleRoutes = new Router<AppState>();
  consoleRoutes.use(csrfProtect() as unknown as RouterMiddleware<AppState>);
  for (const m of modules) if (m.console) consoleRoutes.use(m.console(renderer).routes());
  app.use(async (koaCtx, next) => {
    if (koaCtx.path.startsWith(API_PREFIX) || koaCtx.path.startsWith('/webhooks')) return next();
    return consoleRoutes.routes()(koaCtx as never, next);
  });

  app.use(async (koaCtx) => {
    const ctx = koaCtx as unknown as Ctx;
    if (ctx.status === 404 && ctx.body === undefined) {
      throw new HttpError(404, 'not_found', 'Nothing is here');
    }
  });

  return { app, api, renderer };
}
