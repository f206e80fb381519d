/**
 * The providers' webhooks (no session, no CSRF: each proves itself with the provider's signature
 * or the secret in its path):
 *
 *   GET  /webhooks/whatsapp                              Meta's verification handshake
 *   POST /webhooks/whatsapp                              messages and statuses (X-Hub-Signature-256)
 *   POST /webhooks/twilio                                inbound SMS (X-Twilio-Signature)
 *   POST /webhooks/twilio/status                         status callbacks (X-Twilio-Signature)
 *   POST /webhooks/africastalking/:secret/inbound        inbound SMS (secret in the path)
 *   POST /webhooks/africastalking/:secret/delivery       delivery reports (secret in the path)
 *
 * Each request: verify → parse → store (messages de-duplicated on the provider's id; statuses
 * applied forward only) → answer at once. Routing happens afterwards in the inbound worker. A
 * forged or missing signature gets 401 and stores nothing; a body that cannot be read gets 400;
 * a channel that is not configured, 404.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import type { RouterServices } from '../messaging/types.js';
import { notifyInboundStored } from '../messaging/inbound-worker.js';
import { channelsFor } from './index.js';
import { Ingest } from './ingest.js';
import type { ChannelAdapter } from './types.js';

const ingests = new WeakMap<object, Ingest>();

/** The group-commit writer of this process for this database. */
export function ingestFor(services: RouterServices): Ingest {
  let i = ingests.get(services.db);
  if (!i) {
    i = new Ingest(services, { onStored: () => notifyInboundStored() });
    ingests.set(services.db, i);
  }
  return i;
}

/** What may be logged of an error: its kind and code, never its message. */
export function errorSummary(err: unknown): { name: string; code?: string; frames: string[] } {
  const e = err as { name?: unknown; code?: unknown };
  const frames = err instanceof Error && err.stack ? err.stack.split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 5).map((l) => l.trim()) : [];
  return { name: typeof e?.name === 'string' ? e.name : typeof err, ...(typeof e?.code === 'string' || typeof e?.code === 'number' ? { code: String(e.code) } : {}), frames };
}

const TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

async function handle(koaCtx: unknown, pick: (ctx: Ctx) => ChannelAdapter | undefined, answer: (ctx: Ctx) => void): Promise<void> {
  const ctx = koaCtx as Ctx;
  const adapter = pick(ctx);
  if (!adapter) throw new HttpError(404, 'not_found', 'This channel is not configured');
  const rawBody = (ctx.request as { rawBody?: string }).rawBody;
  if (typeof rawBody !== 'string') throw new HttpError(415, 'unsupported_media_type', 'Send application/json or application/x-www-form-urlencoded');
  let result;
  try {
    result = adapter.parseWebhook({
      method: ctx.method,
      path: ctx.originalUrl,
      headers: ctx.headers,
      rawBody,
      body: (ctx.request as { body?: unknown }).body,
      query: ctx.query as Record<string, unknown>,
    });
  } catch {
    // A parser bug must not become a 500 that the provider retries for days.
    throw new HttpError(400, 'bad_request', 'The body could not be read');
  }
  if (!result.ok) {
    const code = result.status === 401 ? 'unauthorized' : result.status === 403 ? 'forbidden' : 'bad_request';
    throw new HttpError(result.status, code, result.reason);
  }
  try {
    await ingestFor(ctx.services).submit(result.messages, result.statuses, result.addressChanges);
  } catch (err) {
    // Not the error itself: a database error's message carries the bound values (numbers, text).
    ctx.services.log.error({ error: errorSummary(err), channel: adapter.name }, 'a webhook could not be stored');
    // The provider will retry: that is what we want when the database is unavailable.
    throw new HttpError(503, 'unavailable', 'Could not store the notification; try again');
  }
  answer(ctx);
}

const ok = (ctx: Ctx) => {
  ctx.status = 200;
  ctx.type = 'text/plain';
  ctx.body = 'OK';
};

export function webhookRouter(): Router<AppState> {
  const r = new Router<AppState>({ prefix: '/webhooks' });
  const channels = (ctx: Ctx) => channelsFor(ctx.services.config);

  r.get('/whatsapp', (koaCtx) => {
    const ctx = koaCtx as unknown as Ctx;
    const wa = channels(ctx).whatsapp;
    if (!wa) throw new HttpError(404, 'not_found', 'This channel is not configured');
    const { status, body } = wa.verificationChallenge(ctx.query as Record<string, unknown>);
    ctx.status = status;
    ctx.type = 'text/plain';
    ctx.body = body;
  });
  r.post('/whatsapp', (ctx) => handle(ctx, (c) => channels(c).whatsapp, ok));
  r.post('/twilio', (ctx) =>
    handle(ctx, (c) => channels(c).twilio, (c) => {
      c.status = 200;
      c.type = 'text/xml';
      c.body = TWIML_EMPTY;
    }),
  );
  r.post('/twilio/status', (ctx) =>
    handle(ctx, (c) => channels(c).twilio, (c) => {
      c.status = 204;
    }),
  );
  r.post('/africastalking/:secret/inbound', (ctx) => handle(ctx, (c) => channels(c).africastalking, ok));
  r.post('/africastalking/:secret/delivery', (ctx) => handle(ctx, (c) => channels(c).africastalking, ok));
  return r;
}
