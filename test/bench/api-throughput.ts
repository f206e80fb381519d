/**
 * Authenticated API throughput: GET /api/v1/me with a bearer token through the whole app (request id,
 * security headers, body parser, token lookup in the database, routing, response validation, request log)
 * beside a bare Koa handler answering a body of the same size, both served by one child process on this
 * machine and loaded in the same run by undici at concurrency 32, in alternating rounds so that any drift
 * of the machine touches both alike. The ratio is what the app keeps of what Koa itself can do.
 *
 * Goals: one process answers at least 1,000 authenticated requests a second (staff tools and integrations
 * are never the hot path; provider webhooks share the same middleware), p99 stays under 100 ms with 32
 * requests in flight, and the app costs no more than ten times a bare handler (framework, auth and one
 * indexed read should stay within an order of magnitude of doing nothing).
 */
import { join } from 'node:path';
import { ROOT } from '../../src/paths.js';
import { startChild } from './lib/child.js';
import { load, newPool, summarize, type LoadResult } from './lib/http-load.js';
import { row, type Benchmark } from './types.js';

const CONCURRENCY = 32;

const benchmark: Benchmark = {
  name: 'api-throughput',
  async run({ quick }) {
    const rounds = quick ? 1 : 3;
    const perRound = quick ? 300 : 8_000;
    const warmup = quick ? 64 : 2_000;
    const server = await startChild<{ app: string; bare: string; token: string }>(join(ROOT, 'test', 'bench', 'lib', 'api-server.ts'));
    const targets = {
      app: { pool: newPool(server.info.app, CONCURRENCY), path: '/api/v1/me', headers: { authorization: `Bearer ${server.info.token}` } },
      bare: { pool: newPool(server.info.bare, CONCURRENCY), path: '/', headers: {} },
    };
    try {
      const results: Record<'app' | 'bare', LoadResult[]> = { app: [], bare: [] };
      for (const t of Object.values(targets)) await load(t.pool, { ...t, requests: warmup, concurrency: CONCURRENCY });
      for (let i = 0; i < rounds; i++) {
        for (const key of i % 2 === 0 ? (['bare', 'app'] as const) : (['app', 'bare'] as const)) {
          const t = targets[key];
          results[key].push(await load(t.pool, { ...t, requests: perRound, concurrency: CONCURRENCY }));
        }
      }
      const app = summarize(results.app);
      const bare = summarize(results.bare);
      if (app.errors || bare.errors) throw new Error(`unexpected answers: ${app.errors} from the app, ${bare.errors} from bare Koa`);
      const round = (v: number, digits = 0) => Number(v.toFixed(digits));
      return [
        row('api GET /api/v1/me (bearer) throughput', round(app.rps), 'req/s', { atLeast: 1000 }),
        row('api GET /api/v1/me (bearer) p50 latency', round(app.p50, 2), 'ms'),
        row('api GET /api/v1/me (bearer) p99 latency', round(app.p99, 2), 'ms', { atMost: 100 }),
        row('bare Koa throughput', round(bare.rps), 'req/s'),
        row('bare Koa p50 latency', round(bare.p50, 2), 'ms'),
        row('bare Koa p99 latency', round(bare.p99, 2), 'ms'),
        row('api /me throughput ÷ bare Koa', round(app.rps / bare.rps, 3), 'ratio', { atLeast: 0.1 }),
      ];
    } finally {
      await Promise.all(Object.values(targets).map((t) => t.pool.close()));
      await server.stop();
    }
  },
};

export default benchmark;
