/**
 * The broadcasts domain over HTTP (/api/v1):
 *   key messages   GET/POST /key-messages, GET/PATCH /key-messages/:id, GET /key-messages/:id/versions,
 *                  POST /key-messages/:id/submit (messages.write), /approve and /reject (messages.approve)
 *   FAQ            GET/POST /faq, PATCH/DELETE /faq/:id (messages.write)
 *   broadcasts     GET /broadcasts, GET /broadcasts/:id, GET /broadcasts/:id/stats (reports.read: counts only);
 *                  POST /broadcasts, PATCH /broadcasts/:id, GET /broadcasts/:id/preview,
 *                  POST /broadcasts/:id/send {at?}, /pause, /resume, /cancel (broadcasts.send)
 */
import { z } from 'zod';
import { Api, idParam, queryInt } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import { audit } from '../staff/audit.js';
import {
  BROADCAST_STATUSES,
  broadcastInput,
  broadcastPatch,
  broadcastStats,
  cancelBroadcast,
  completeIfDone,
  createBroadcast,
  getBroadcast,
  listBroadcasts,
  pauseBroadcast,
  resumeBroadcast,
  scheduleBroadcast,
  sendBroadcast,
  updateBroadcast,
} from './broadcasts.js';
import { createFaq, deleteFaq, faqInput, faqPatch, listFaq, updateFaq } from './faq.js';
import { approveMessage, createMessage, getMessage, listMessages, messageInput, messagePatch, messageVersions, rejectMessage, submitMessage, updateMessage } from './messages.js';
import { previewAndKeep } from './preview.js';

const page = z.object({ limit: queryInt(1, 200).optional(), offset: queryInt(0, 10_000_000).optional() });
const variantOut = z.object({ text: z.string(), template: z.object({ name: z.string(), language: z.string(), params: z.array(z.string()) }).nullable().optional() });
const versionOut = z.object({
  id: z.number(),
  version: z.number(),
  status: z.enum(['draft', 'submitted', 'approved', 'superseded']),
  variants: z.record(z.string(), variantOut),
  media: z.object({ kind: z.string(), url: z.string().optional(), id: z.string().optional(), filename: z.string().optional() }).nullable(),
  authorLabel: z.string().nullable(),
  reviewedByLabel: z.string().nullable(),
  reviewedAt: z.string().nullable(),
  reviewNote: z.string().nullable(),
});
const messageOut = z.object({
  id: z.number(),
  key: z.string(),
  title: z.string(),
  topic: z.string(),
  rumour: z.string().nullable(),
  archivedAt: z.string().nullable(),
  approved: versionOut.nullable(),
  draft: versionOut.nullable(),
  languages: z.array(z.string()),
});
const faqOut = z.object({ id: z.number(), messageId: z.number(), keywords: z.record(z.string(), z.array(z.string())), active: z.boolean(), answering: z.boolean().optional() });
const broadcastOut = z.object({
  id: z.number(),
  name: z.string(),
  status: z.enum(BROADCAST_STATUSES),
  messageId: z.number(),
  messageVersionId: z.number(),
  lists: z.array(z.number()),
  segmentId: z.number().nullable(),
  channelPolicy: z.string(),
  quietHours: z.object({ start: z.string(), end: z.string() }).nullable(),
  recurrence: z.string(),
  sendAt: z.string().nullable(),
  nextRunAt: z.string().nullable(),
  recipients: z.number().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
const statsOut = z.object({
  total: z.number(),
  queued: z.number(),
  held: z.number(),
  sent: z.number(),
  delivered: z.number(),
  read: z.number(),
  failed: z.number(),
  skipped: z.number(),
  cancelled: z.number(),
  failedBy: z.record(z.string(), z.number()),
  skippedBy: z.record(z.string(), z.number()),
  byChannel: z.record(z.string(), z.record(z.string(), z.number())),
  byLanguage: z.record(z.string(), z.record(z.string(), z.number())),
});

const actor = (ctx: Ctx) => ctx.state.actor!;

export function registerBroadcastsApi(api: Api): void {
  // ------------------------------------------------------------------------- key messages
  api.route({
    method: 'get', path: '/key-messages', tag: 'key-messages', summary: 'Key messages of the bank, newest change first', permission: 'messages.write',
    query: page.extend({ topic: z.string().max(32).optional(), search: z.string().max(100).optional(), state: z.enum(['approved', 'review', 'draft']).optional(), rumours: z.enum(['true', 'false']).optional(), archived: z.enum(['true', 'false']).optional() }),
    response: z.object({ data: z.array(messageOut), total: z.number() }),
    handler: (ctx, { query }) => listMessages(ctx.services.db.knex, { ...query, rumours: query.rumours === 'true', archived: query.archived === 'true' }),
  });
  api.route({
    method: 'post', path: '/key-messages', tag: 'key-messages', summary: 'Write a key message (version 1, a draft)', permission: 'messages.write', status: 201,
    body: messageInput, response: z.object({ data: messageOut }),
    handler: async (ctx, { body }) => ({ data: await createMessage(ctx.services.db, actor(ctx), body) }),
  });
  api.route({
    method: 'get', path: '/key-messages/:id', tag: 'key-messages', summary: 'One key message with its approved version and open draft', permission: 'messages.write',
    params: idParam, response: z.object({ data: messageOut }),
    handler: async (ctx, { params }) => ({ data: await getMessage(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'patch', path: '/key-messages/:id', tag: 'key-messages', summary: 'Change a key message; new content goes into a draft version (a new one when the message is approved)', permission: 'messages.write',
    params: idParam, body: messagePatch, response: z.object({ data: messageOut }),
    handler: async (ctx, { params, body }) => ({ data: await updateMessage(ctx.services.db, actor(ctx), params.id, body) }),
  });
  api.route({
    method: 'get', path: '/key-messages/:id/versions', tag: 'key-messages', summary: 'Every version of a key message, newest first', permission: 'messages.write',
    params: idParam, response: z.object({ data: z.array(versionOut) }),
    handler: async (ctx, { params }) => ({ data: await messageVersions(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'post', path: '/key-messages/:id/submit', tag: 'key-messages', summary: 'Submit the draft for review', permission: 'messages.write',
    params: idParam, response: z.object({ data: messageOut }),
    handler: async (ctx, { params }) => ({ data: await submitMessage(ctx.services.db, actor(ctx), params.id) }),
  });
  api.route({
    method: 'post', path: '/key-messages/:id/approve', tag: 'key-messages', summary: 'Approve the version under review (by a staff user who did not write or edit it)', permission: 'messages.approve',
    params: idParam, body: z.object({ version: z.number().int().positive().optional() }).optional(), response: z.object({ data: messageOut }),
    handler: async (ctx, { params, body }) => ({ data: await approveMessage(ctx.services.db, actor(ctx), params.id, { version: body?.version }) }),
  });
  api.route({
    method: 'post', path: '/key-messages/:id/reject', tag: 'key-messages', summary: 'Send the version under review back to draft with a note', permission: 'messages.approve',
    params: idParam, body: z.object({ note: z.string().trim().min(1).max(2000) }), response: z.object({ data: messageOut }),
    handler: async (ctx, { params, body }) => ({ data: await rejectMessage(ctx.services.db, actor(ctx), params.id, body.note) }),
  });

  // ---------------------------------------------------------------------------------- FAQ
  api.route({
    method: 'get', path: '/faq', tag: 'key-messages', summary: 'FAQ entries: keywords per language answered by a key message', permission: 'messages.write',
    query: page.extend({ messageId: queryInt(1, 2 ** 31).optional() }), response: z.object({ data: z.array(faqOut), total: z.number() }),
    handler: (ctx, { query }) => listFaq(ctx.services.db.knex, query),
  });
  api.route({
    method: 'post', path: '/faq', tag: 'key-messages', summary: 'Add an FAQ entry', permission: 'messages.write', status: 201,
    body: faqInput, response: z.object({ data: faqOut }),
    handler: async (ctx, { body }) => ({ data: await createFaq(ctx.services.db, actor(ctx), body) }),
  });
  api.route({
    method: 'patch', path: '/faq/:id', tag: 'key-messages', summary: 'Change an FAQ entry', permission: 'messages.write',
    params: idParam, body: faqPatch, response: z.object({ data: faqOut }),
    handler: async (ctx, { params, body }) => ({ data: await updateFaq(ctx.services.db, actor(ctx), params.id, body) }),
  });
  api.route({
    method: 'delete', path: '/faq/:id', tag: 'key-messages', summary: 'Remove an FAQ entry', permission: 'messages.write', status: 204,
    params: idParam,
    handler: async (ctx, { params }) => deleteFaq(ctx.services.db, actor(ctx), params.id),
  });

  // --------------------------------------------------------------------------- broadcasts
  api.route({
    method: 'get', path: '/broadcasts', tag: 'broadcasts', summary: 'Broadcasts, newest first', permission: 'reports.read',
    query: page.extend({ status: z.enum(BROADCAST_STATUSES).optional() }), response: z.object({ data: z.array(broadcastOut), total: z.number() }),
    handler: (ctx, { query }) => listBroadcasts(ctx.services.db.knex, query),
  });
  api.route({
    method: 'post', path: '/broadcasts', tag: 'broadcasts', summary: 'Compose a broadcast (a draft) of an approved key message', permission: 'broadcasts.send', status: 201,
    body: broadcastInput, response: z.object({ data: broadcastOut }),
    handler: async (ctx, { body }) => ({ data: await createBroadcast(ctx.services.db, ctx.services.config, actor(ctx), body) }),
  });
  api.route({
    method: 'get', path: '/broadcasts/:id', tag: 'broadcasts', summary: 'One broadcast with its live stats', permission: 'reports.read',
    params: idParam, response: z.object({ data: broadcastOut, stats: statsOut }),
    handler: async (ctx, { params }) => {
      const { knex } = ctx.services.db;
      const [b, stats] = await Promise.all([getBroadcast(knex, params.id), broadcastStats(knex, params.id)]);
      return { data: await completeIfDone(knex, b, stats), stats };
    },
  });
  api.route({
    method: 'get', path: '/broadcasts/:id/stats', tag: 'broadcasts', summary: 'Queued, held, sent, delivered, read, failed (by reason), skipped (by reason), per channel and language', permission: 'reports.read',
    params: idParam, response: statsOut,
    handler: async (ctx, { params }) => {
      await getBroadcast(ctx.services.db.knex, params.id);
      return broadcastStats(ctx.services.db.knex, params.id);
    },
  });
  api.route({
    method: 'patch', path: '/broadcasts/:id', tag: 'broadcasts', summary: 'Change a draft broadcast', permission: 'broadcasts.send',
    params: idParam, body: broadcastPatch, response: z.object({ data: broadcastOut }),
    handler: async (ctx, { params, body }) => ({ data: await updateBroadcast(ctx.services.db, actor(ctx), params.id, body) }),
  });
  api.route({
    method: 'get', path: '/broadcasts/:id/preview', tag: 'broadcasts', summary: 'Recipients by language and channel, fallbacks, exclusions, SMS segments, cost, time to finish, and a rendered sample per language', permission: 'broadcasts.send',
    params: idParam, query: z.object({ at: z.iso.datetime({ offset: true }).optional() }),
    handler: async (ctx, { params, query }) => {
      const data = await previewAndKeep(ctx.services.db, ctx.services.config, params.id, { startAt: query.at ? new Date(query.at) : undefined });
      await audit(ctx.services.db, actor(ctx), { action: 'broadcast.preview', entityType: 'broadcast', entityId: params.id, detail: { recipients: data.recipients, samples: data.samples.length } });
      return { data };
    },
  });
  api.route({
    method: 'post', path: '/broadcasts/:id/send', tag: 'broadcasts', summary: 'Send a draft now, or at a time (`at`); a daily or weekly broadcast starts at `at`', permission: 'broadcasts.send',
    params: idParam, body: z.object({ at: z.iso.datetime({ offset: true }).optional() }).optional(), response: z.object({ data: broadcastOut }),
    handler: async (ctx, { params, body }) => {
      const b = await getBroadcast(ctx.services.db.knex, params.id);
      if (body?.at || b.recurrence !== 'none') {
        const at = body?.at ? new Date(body.at) : new Date();
        return { data: await scheduleBroadcast(ctx.services.db, actor(ctx), params.id, at) };
      }
      return { data: await sendBroadcast(ctx.services.db, ctx.services.config, actor(ctx), params.id) };
    },
  });
  api.route({
    method: 'post', path: '/broadcasts/:id/pause', tag: 'broadcasts', summary: 'Pause: messages not yet claimed by a dispatcher wait (status held)', permission: 'broadcasts.send',
    params: idParam, response: z.object({ data: broadcastOut, held: z.number() }),
    handler: async (ctx, { params }) => {
      const r = await pauseBroadcast(ctx.services.db, actor(ctx), params.id);
      return { data: r.broadcast, held: r.held };
    },
  });
  api.route({
    method: 'post', path: '/broadcasts/:id/resume', tag: 'broadcasts', summary: 'Resume a paused broadcast', permission: 'broadcasts.send',
    params: idParam, response: z.object({ data: broadcastOut, released: z.number() }),
    handler: async (ctx, { params }) => {
      const r = await resumeBroadcast(ctx.services.db, actor(ctx), params.id);
      return { data: r.broadcast, released: r.released };
    },
  });
  api.route({
    method: 'post', path: '/broadcasts/:id/cancel', tag: 'broadcasts', summary: 'Cancel: nothing more of it is sent', permission: 'broadcasts.send',
    params: idParam, response: z.object({ data: broadcastOut, cancelled: z.number() }),
    handler: async (ctx, { params }) => {
      const r = await cancelBroadcast(ctx.services.db, actor(ctx), params.id);
      return { data: r.broadcast, cancelled: r.cancelled };
    },
  });
}
