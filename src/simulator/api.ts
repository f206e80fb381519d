/**
 * Phone simulator API (permission simulator.use):
 *   POST /simulator/messages {number, medium, text | payload+tap}   the test contact writes (or taps a button)
 *   GET  /simulator/conversation?number&medium                      what the simulated phone shows
 */
import { z } from 'zod';
import type { Api } from '../http/api.js';
import { MEDIA, conversation, sendSchema, simulatorSend } from './service.js';

export function registerSimulatorApi(api: Api): void {
  api.route({
    method: 'post', path: '/simulator/messages', tag: 'simulator', permission: 'simulator.use', status: 201,
    summary: 'A test contact sends a message (or taps a WhatsApp button) from the phone simulator; it is stored and routed like any inbound message',
    body: sendSchema,
    handler: async (ctx, { body }) => ({ data: await simulatorSend(ctx.services, ctx.state.actor!, body) }),
  });
  api.route({
    method: 'get', path: '/simulator/conversation', tag: 'simulator', permission: 'simulator.use',
    summary: "A test number's conversation on the simulated phone, oldest first; messages the simulator delivered are reported delivered (WhatsApp: read)",
    query: z.object({ number: z.string().min(1).max(40), medium: z.enum(MEDIA).default('whatsapp') }),
    handler: async (ctx, { query }) => ({ data: await conversation(ctx.services, query.number, query.medium, { markRead: true }) }),
  });
}
