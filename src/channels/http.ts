/**
 * The HTTP client the adapters share: one undici Pool per provider origin, keep-alive, bounded
 * connections and timeouts. (undici's Pool.request is several times faster than the global fetch
 * on this machine, and the dispatcher's throughput goal depends on it.)
 */
import { Pool } from 'undici';
import type { ProviderError } from './types.js';

export interface HttpOptions {
  /** Connections per origin (default 64). */
  connections?: number;
  /** Milliseconds to wait for the provider's answer (default 20,000). */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export class ProviderHttp {
  private readonly pool: Pool;
  readonly basePath: string;

  constructor(baseUrl: string, opts: HttpOptions = {}) {
    const u = new URL(baseUrl);
    this.basePath = u.pathname.replace(/\/+$/, '');
    const timeout = opts.timeoutMs ?? 20_000;
    this.pool = new Pool(u.origin, {
      connections: opts.connections ?? 64,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connectTimeout: Math.min(timeout, 10_000),
    });
  }

  /** POSTs `body` to basePath + path. Network failures throw; use `networkError` to classify them. */
  async post(path: string, headers: Record<string, string>, body: string): Promise<HttpResponse> {
    const res = await this.pool.request({ method: 'POST', path: this.basePath + path, headers, body });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** A request that never got an answer (refused, reset, timed out) is worth another try. */
export function networkError(err: unknown): ProviderError {
  const code = (err as { code?: string })?.code ?? 'network';
  return { class: 'transient', code, detail: `the provider could not be reached (${code})` };
}

/** Retry-After in milliseconds, when the provider sent one. */
export function retryAfterMs(headers: HttpResponse['headers']): number | undefined {
  const v = headers['retry-after'];
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  const n = Number(s);
  if (Number.isFinite(n) && n >= 0) return Math.round(n * 1000);
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Keeps provider detail short and free of line breaks for the outbox's error_detail column. */
export function shortDetail(s: unknown, max = 280): string {
  const t = String(s ?? '').replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}
