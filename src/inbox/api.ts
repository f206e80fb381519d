/**
 * /api/v1/inbox: the staff inbox over JSON — the same services and audit events as the console.
 * Conversations are addressed by their id; one of an erased contact, or a restricted one (psychosocial
 * handoff) for a caller without complaints.sensitive, answers 404 like an id nobody used.
 */
import { z } from 'zod';
import { idParam, type Api } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import {
  CLAIM_TIMEOUT_MINUTES, claimConversation, closeConversation, faqFromReply, faqFromReplySchema, getConversation, keyMessageChoices, listConversations, listQuerySchema,
  releaseConversation, reopenConversation, replySchema, replyToConversation, setRumour, tagConversation, topicChoices, type Conversation, type ConversationSummary, type Viewer,
} from './service.js';

export const viewerOf = (ctx: Ctx): Viewer => ({ actor: ctx.state.actor!, permissions: ctx.state.permissions ?? [] });
const iso = (d: Date | null) => d?.toISOString() ?? null;

function summaryOut(c: ConversationSummary) {
  return {
    ...c,
    openedAt: c.openedAt.toISOString(),
    closedAt: iso(c.closedAt),
    lastMessageAt: c.lastMessageAt.toISOString(),
    claim: c.claim ? { ...c.claim, at: c.claim.at.toISOString() } : null,
  };
}

function conversationOut(c: Conversation) {
  return {
    ...summaryOut(c),
    contactStoppedAt: iso(c.contactStoppedAt),
    window: { ...c.window, until: iso(c.window.until) },
    thread: c.thread.map((t) => ({ ...t, at: t.at.toISOString() })),
  };
}

const claimOut = z.object({ by: z.string(), mine: z.boolean(), at: z.string(), stale: z.boolean() }).nullable();
const summarySchema = z.object({
  id: z.number(), contactId: z.number(), contactName: z.string().nullable(), language: z.string().nullable(), contactStatus: z.string(),
  status: z.enum(['open', 'closed']), openedAt: z.string(), closedAt: z.string().nullable(), lastMessageAt: z.string(), medium: z.string().nullable(),
  preview: z.string().nullable(), previewErased: z.boolean(), hasError: z.boolean(), restricted: z.boolean(), topic: z.string().nullable(), rumour: z.boolean(), claim: claimOut,
}).passthrough();
const countsSchema = z.object({ open: z.number(), unclaimed: z.number(), mine: z.number(), rumours: z.number(), errors: z.number() });
const ok = z.object({ ok: z.literal(true) });

export function registerInboxApi(api: Api): void {
  api.route({
    method: 'get', path: '/inbox', tag: 'inbox', permission: 'inbox.read',
    summary: 'Conversations waiting for staff (messages no automatic step answered, and ones that could not be handled automatically), newest message first: show all, mine or unclaimed; topic; rumour; open or closed. Erased contacts are not counted',
    query: listQuerySchema,
    response: z.object({ data: z.array(summarySchema), total: z.number(), counts: countsSchema }),
    handler: async (ctx, { query }) => {
      const r = await listConversations(ctx.services.db, viewerOf(ctx), query);
      return { data: r.data.map(summaryOut), total: r.total, counts: r.counts };
    },
  });

  api.route({
    method: 'get', path: '/inbox/topics', tag: 'inbox', permission: 'inbox.read',
    summary: 'Topics a conversation can be tagged with (the key-message topics)',
    response: z.object({ data: z.array(z.string()) }),
    handler: async (ctx) => ({ data: await topicChoices(ctx.services.db.knex) }),
  });

  api.route({
    method: 'get', path: '/inbox/:id', tag: 'inbox', permission: 'inbox.read',
    summary: 'One conversation: its thread (the messages that waited for staff and the replies sent from the inbox, oldest first), the WhatsApp 24-hour window, and the approved key messages that can be sent now. Audited',
    params: idParam,
    handler: async (ctx, { params }) => {
      const c = await getConversation(ctx.services.db, viewerOf(ctx), params.id);
      return { data: conversationOut(c), keyMessages: await keyMessageChoices(ctx.services.db, ctx.services.config, c) };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/claim', tag: 'inbox', permission: 'inbox.reply',
    summary: `Claim the conversation: only its holder may reply. 409 while another operator holds it; a claim without a reply for ${CLAIM_TIMEOUT_MINUTES} minutes can be taken over`,
    params: idParam, response: z.object({ ok: z.literal(true), tookOver: z.boolean() }),
    handler: async (ctx, { params }) => ({ ok: true, ...(await claimConversation(ctx.services.db, viewerOf(ctx), params.id)) }),
  });

  api.route({
    method: 'post', path: '/inbox/:id/release', tag: 'inbox', permission: 'inbox.reply',
    summary: 'Give the conversation back (its holder only)',
    params: idParam, response: ok,
    handler: async (ctx, { params }) => {
      await releaseConversation(ctx.services.db, viewerOf(ctx), params.id);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/reply', tag: 'inbox', permission: 'inbox.reply', status: 201,
    summary: 'Reply (holder only): `text` inside the WhatsApp 24-hour window or by SMS (409 window_closed outside it), or `keyMessageId` of an approved key message, sent as its WhatsApp template outside the window. Queued in the outbox (purpose reply) to the address the person wrote from',
    params: idParam, body: replySchema,
    response: z.object({ replyId: z.number(), outboxId: z.number(), kind: z.enum(['text', 'key_message']), asTemplate: z.boolean(), medium: z.string(), language: z.string() }),
    handler: async (ctx, { params, body }) => replyToConversation(ctx.services.db, ctx.services.config, viewerOf(ctx), params.id, body),
  });

  api.route({
    method: 'post', path: '/inbox/:id/tag', tag: 'inbox', permission: 'inbox.reply',
    summary: 'Tag the conversation with a topic (one of /inbox/topics), or null to clear it',
    params: idParam, body: z.object({ topic: z.string().trim().max(40).nullable() }), response: ok,
    handler: async (ctx, { params, body }) => {
      await tagConversation(ctx.services.db, viewerOf(ctx), params.id, body.topic);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/rumour', tag: 'inbox', permission: 'inbox.reply',
    summary: 'Mark (or unmark) the conversation as a rumour',
    params: idParam, body: z.object({ rumour: z.boolean() }), response: ok,
    handler: async (ctx, { params, body }) => {
      await setRumour(ctx.services.db, viewerOf(ctx), params.id, body.rumour);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/close', tag: 'inbox', permission: 'inbox.reply',
    summary: 'Close (resolve) the conversation and end its claim. 409 while another operator holds it. A new message from the person reopens it',
    params: idParam, response: ok,
    handler: async (ctx, { params }) => {
      await closeConversation(ctx.services.db, viewerOf(ctx), params.id);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/reopen', tag: 'inbox', permission: 'inbox.reply',
    summary: 'Open a closed conversation again (unclaimed)',
    params: idParam, response: ok,
    handler: async (ctx, { params }) => {
      await reopenConversation(ctx.services.db, viewerOf(ctx), params.id);
      return { ok: true };
    },
  });

  api.route({
    method: 'post', path: '/inbox/:id/faq', tag: 'inbox', permission: 'inbox.reply', status: 201,
    summary: 'Turn a free-text reply of this conversation into a key-message draft (in its language) and an FAQ entry with these keywords. The entry answers only after a second staff user approves the key message. Also needs messages.write',
    params: idParam, body: faqFromReplySchema,
    handler: async (ctx, { params, body }) => {
      const r = await faqFromReply(ctx.services.db, ctx.services.config, viewerOf(ctx), params.id, body);
      return { keyMessageId: r.message.id, keyMessageKey: r.message.key, faqId: r.faq.id, state: r.message.draft?.status ?? 'draft' };
    },
  });
}
