/**
 * The HTTP client the adapters share: one undici Pool per provider origin, keep-alive, bounded
 * connections and timeouts. (undici's Pool is several times faster than the global fetch on this
 * machine, and the dispatcher's throughput goal depends on it.) A request goes through the pool's
 * `dispatch` with a small handler that collects the answer's bytes: the same connections, timeouts
 * and errors as `Pool.request`, without a response stream and an async resource per request (a
 * few microseconds of CPU each, at thousands of messages a second).
 */
import { Pool, type Dispatcher } from 'undici';
import type { ProviderError } from './types.js';

export interface HttpOptions {
  /** Connections per origin (default 64; the channel registry passes DISPATCH_CONCURRENCY). */
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
  post(path: string, headers: Record<string, string>, body: string): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      this.pool.dispatch({ method: 'POST', path: this.basePath + path, headers, body }, new Collect(resolve, reject));
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Collects one answer: its status, headers and text (UTF-8). */
class Collect implements Dispatcher.DispatchHandler {
  private status = 0;
  private headers: HttpResponse['headers'] = {};
  private chunks: Buffer[] = [];

  constructor(
    private readonly resolve: (r: HttpResponse) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  onRequestStart(): void {
    // A request retried on another connection starts again from nothing.
    this.status = 0;
    this.chunks = [];
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: HttpResponse['headers']): void {
    if (statusCode < 200) return; // 1xx: informational, the answer follows
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const c = this.chunks;
    let text = c.length === 1 ? c[0].toString('utf8') : Buffer.concat(c).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte-order mark, as undici's text() drops it
    this.resolve({ status: this.status, headers: this.headers, text });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.reject(err);
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
