/**
 * Routes stored inbound messages after the webhook has answered. Webhooks call
 * `notifyInboundStored()` after each store and the worker routes at the next turn of the event
 * loop; a sweep every second also routes what other processes stored, or what was stored before a
 * crash. Claims are atomic (`routeStored`), so several processes can run a worker each.
 *
 * A message whose routing throws is left for the next sweep; after five failures it is set aside
 * (route `error`) so that it cannot hold up the others, and the failure is logged by id only; the
 * staff inbox shows it as a message that could not be handled automatically.
 * A message claimed by a process that died while routing it (route `routing` for over two minutes)
 * is released and routed again.
 */
import { toInt } from '../db/values.js';
import { routeStored } from './inbound.js';
import { noteUnhandledById } from './inbox.js';
import type { NamedStep } from './router.js';
import { ROUTER_STEPS } from './steps.js';
import type { RouterServices } from './types.js';

const kicks = new Set<() => void>();

function summary(err: unknown): { name: string; code?: string; frames: string[] } {
  const e = err as { name?: unknown; code?: unknown };
  const frames = err instanceof Error && err.stack ? err.stack.split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 5).map((l) => l.trim()) : [];
  return { name: typeof e?.name === 'string' ? e.name : typeof err, ...(typeof e?.code === 'string' || typeof e?.code === 'number' ? { code: String(e.code) } : {}), frames };
}

/** Tells this process's inbound workers that messages were stored. */
export function notifyInboundStored(): void {
  for (const k of kicks) k();
}

export interface InboundWorkerOptions {
  steps?: readonly NamedStep[];
  /** Sweep interval (default 1,000 ms). */
  sweepMs?: number;
  /** Messages routed per pass (default 200). */
  batch?: number;
  /** Failures before a message is set aside (default 5). */
  maxFailures?: number;
  /** A `routing` claim older than this is released (default 120,000 ms). */
  staleClaimMs?: number;
}

export interface InboundWorker {
  /** Routes pending messages now (resolves when the pass that includes them is done). */
  kick(): Promise<void>;
  /** Messages routed since start. */
  readonly routed: number;
  stop(): Promise<void>;
}

export function startInboundWorker(services: RouterServices, opts: InboundWorkerOptions = {}): InboundWorker {
  const steps = opts.steps ?? ROUTER_STEPS;
  const batch = opts.batch ?? 200;
  const maxFailures = opts.maxFailures ?? 5;
  const staleMs = opts.staleClaimMs ?? 120_000;
  const failures = new Map<number, number>();
  const { knex } = services.db;
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  let routed = 0;
  let lastStaleCheck = 0;

  async function releaseStale(): Promise<void> {
    const now = Date.now();
    if (now - lastStaleCheck < Math.min(staleMs / 2, 60_000)) return;
    lastStaleCheck = now;
    const n = await knex('inbound_messages').where('route', 'routing').where('handled_at', '<', new Date(now - staleMs)).update({ handled_at: null, route: null });
    if (n) services.log.warn({ count: n }, 'inbound messages released from a stale routing claim');
  }

  async function pass(): Promise<void> {
    await releaseStale();
    for (;;) {
      if (stopped) return;
      const skip = [...failures.keys()];
      const q = knex('inbound_messages').whereNull('handled_at').orderBy('id').limit(batch);
      const ids = (await q.pluck('id')).map(toInt);
      let progressed = 0;
      for (const id of ids) {
        if (stopped) return;
        try {
          if ((await routeStored(services, steps, id)) !== null) {
            routed++;
            progressed++;
          }
          failures.delete(id);
        } catch (err) {
          const n = (failures.get(id) ?? 0) + 1;
          failures.set(id, n);
          // Kind and code only: messages of database errors carry bound values (numbers, text).
          services.log.error({ error: summary(err), inboundMessageId: id, attempt: n }, 'routing an inbound message failed');
          if (n >= maxFailures) {
            // Set aside, and into the staff inbox (flagged: could not be handled automatically).
            await knex.transaction(async (trx) => {
              const setAside = await trx('inbound_messages').where('id', id).whereNull('handled_at').update({ handled_at: new Date(), route: 'error' });
              if (setAside) await noteUnhandledById(trx, id, true);
            });
            failures.delete(id);
          }
        }
      }
      // Stop when nothing is left, or when all that is left failed in this pass (the sweep retries it).
      if (ids.length < batch || progressed === 0 || ids.every((id) => skip.includes(id))) return;
    }
  }

  function kick(): Promise<void> {
    if (stopped) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await pass();
        } while (again && !stopped);
      } catch (err) {
        services.log.error({ error: summary(err) }, 'inbound worker pass failed');
      } finally {
        running = null;
      }
    })();
    return running;
  }

  const onNotify = () => {
    setImmediate(() => void kick());
  };
  kicks.add(onNotify);
  const timer = setInterval(() => void kick(), opts.sweepMs ?? 1000);
  timer.unref();
  void kick();

  return {
    kick,
    get routed() {
      return routed;
    },
    async stop() {
      stopped = true;
      kicks.delete(onNotify);
      clearInterval(timer);
      if (running) await running;
    },
  };
}
