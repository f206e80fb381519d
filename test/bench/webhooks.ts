/**
 * Webhook intake: signed WhatsApp notifications — one inbound message for every three status
 * callbacks (sent, delivered, read of an outbound message: Meta's "three times the outbound rate in
 * statuses, plus the inbound traffic") — posted through the whole app (request id, security
 * headers, body parser with raw body, HMAC check, parsing, group-committed store in a real SQLite
 * file or PostgreSQL, status application) beside a bare Koa handler on the same machine, in
 * alternating rounds. Every request is distinct and signed before the clock starts. After the
 * load, the benchmark checks that every message was stored and every `read` reached its outbox row,
 * then routes what was stored with the real router (which runs after the webhook has answered,
 * in the inbound worker) and reports that rate too.
 */
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import type { Pool } from 'undici';
import { ROOT } from '../../src/paths.js';
import { startChild } from './lib/child.js';
import { newPool, percentile, type LoadResult } from './lib/http-load.js';
import { row, type Benchmark } from './types.js';

const CONCURRENCY = 32;

interface Req {
  path: string;
  headers: Record<string, string>;
  body: string;
}

function notification(value: Record<string, unknown>): string {
  return JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' }, ...value } }] }] });
}

/**
 * n events: inbound message k, then the statuses of outbound messages as they would arrive: `sent`
 * of message k, `delivered` of message k - LAG and `read` of message k - 2·LAG (a status callback of
 * one message is never next to another of the same message, as in real traffic).
 */
function events(n: number, secret: string, senders: number, LAG: number): Req[] {
  const out: Req[] = [];
  const ts = Math.floor(Date.now() / 1000);
  const sign = (body: string) => ({ path: '/webhooks/whatsapp', headers: { 'content-type': 'application/json', 'x-hub-signature-256': 'sha256=' + createHmac('sha256', secret).update(body).digest('hex') }, body });
  const status = (i: number, st: string) =>
    sign(notification({ statuses: [{ id: `wamid.BENCH.OUT.${i}`, status: st, timestamp: String(ts), recipient_id: String(51900000000 + (i % senders)), pricing: { billable: true, pricing_model: 'PMP', category: 'utility', type: 'regular' } }] }));
  for (let k = 0; out.length < n; k++) {
    const wa = String(51900000000 + (k % senders));
    out.push(sign(notification({ contacts: [{ profile: { name: 'Bench' }, wa_id: wa }], messages: [{ from: wa, id: `wamid.BENCH.IN.${k}`, timestamp: String(ts), type: 'text', text: { body: `Hola, pregunta número ${k}` } }] })));
    out.push(status(k, 'sent'));
    if (k >= LAG) out.push(status(k - LAG, 'delivered'));
    if (k >= 2 * LAG) out.push(status(k - 2 * LAG, 'read'));
  }
  return out.slice(0, n);
}

/** Closed loop: `concurrency` loops, each posting its next request as soon as the answer is read; requests taken in order. */
async function fire(pool: Pool, reqs: Req[], concurrency: number, expect: number[]): Promise<LoadResult> {
  const latencies = new Float64Array(reqs.length);
  let next = 0;
  let errors = 0;
  const loop = async () => {
    while (next < reqs.length) {
      const i = next++;
      const r = reqs[i];
      const t0 = performance.now();
      const res = await pool.request({ method: 'POST', path: r.path, headers: r.headers, body: r.body });
      await res.body.dump();
      latencies[i] = performance.now() - t0;
      if (!expect.includes(res.statusCode)) errors++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, reqs.length) }, loop));
  return { requests: reqs.length, errors, seconds: (performance.now() - started) / 1000, latencies };
}

function summary(results: LoadResult[]) {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const seconds = results.reduce((n, r) => n + r.seconds, 0);
  const all = new Float64Array(requests);
  let at = 0;
  for (const r of results) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  return { requests, errors: results.reduce((n, r) => n + r.errors, 0), rps: requests / seconds, p50: percentile(all, 0.5), p99: percentile(all, 0.99) };
}

const benchmark: Benchmark = {
  name: 'webhooks',
  async run({ quick }) {
    const rounds = quick ? 1 : 3;
    const perRound = quick ? 400 : 12_000;
    const warmup = quick ? 80 : 2_000;
    const total = warmup + rounds * perRound;
    const outbound = Math.ceil(total / 2) + 1;
    const server = await startChild<{ app: string; bare: string; env: Record<string, string> }>(join(ROOT, 'test', 'bench', 'lib', 'webhook-server.ts'), [String(outbound)]);
    const pools = { app: newPool(server.info.app, CONCURRENCY), bare: newPool(server.info.bare, CONCURRENCY) };
    try {
      const secret = server.info.env.WHATSAPP_APP_SECRET;
      const senders = quick ? 100 : 2_000;
      const all = events(total, secret, senders, quick ? 20 : 500);
      const warm = all.slice(0, warmup);
      const chunks = Array.from({ length: rounds }, (_, i) => all.slice(warmup + i * perRound, warmup + (i + 1) * perRound));
      const results: Record<'app' | 'bare', LoadResult[]> = { app: [], bare: [] };
      await fire(pools.app, warm, CONCURRENCY, [200]);
      await fire(pools.bare, warm, CONCURRENCY, [200]);
      for (let i = 0; i < rounds; i++) {
        for (const key of i % 2 === 0 ? (['bare', 'app'] as const) : (['app', 'bare'] as const)) {
          results[key].push(await fire(pools[key], chunks[i], CONCURRENCY, [200]));
        }
      }
      const app = summary(results.app);
      const bare = summary(results.bare);
      if (app.errors || bare.errors) throw new Error(`unexpected answers: ${app.errors} from the app, ${bare.errors} from bare Koa`);

      // Every event had its effect.
      const counts = (await (await pools.bare.request({ method: 'GET', path: '/_counts' })).body.json()) as { inbound: number; read: number; early: number };
      const inboundSent = all.filter((r) => r.body.includes('"messages":[')).length;
      const readSent = all.filter((r) => r.body.includes('"status":"read"')).length;
      if (counts.inbound !== inboundSent || counts.read !== readSent) throw new Error(`stored ${counts.inbound}/${inboundSent} messages, ${counts.read}/${readSent} rows read`);

      const routing = (await (await pools.bare.request({ method: 'POST', path: '/_route' })).body.json()) as { routed: number; seconds: number };
      const round = (v: number, digits = 0) => Number(v.toFixed(digits));
      return [
        row('webhook events (1 message : 3 statuses, signed, stored) throughput', round(app.rps), 'events/s', { atLeast: 4000 }),
        row('webhook events p50 latency', round(app.p50, 2), 'ms'),
        row('webhook events p99 latency', round(app.p99, 2), 'ms', { atMost: 50 }),
        row('webhook bare Koa throughput', round(bare.rps), 'req/s'),
        row('webhook bare Koa p99 latency', round(bare.p99, 2), 'ms'),
        row('webhook events ÷ bare Koa', round(app.rps / bare.rps, 3), 'ratio'),
        row('inbound routing after the webhook (real router)', round(routing.routed / routing.seconds), 'msgs/s'),
      ];
    } finally {
      await Promise.all(Object.values(pools).map((p) => p.close()));
      await server.stop();
    }
  },
};

export default benchmark;
