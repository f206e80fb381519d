/**
 * The staff inbox: the router's last step. The message waits for a human; the person gets an
 * acknowledgement (at most one every 12 hours, so a conversation is not answered by a robot
 * after every line).
 */
import { enqueue } from './outbox.js';
import { wording } from './texts.js';
import type { RouterStep } from './types.js';

const ACK_EVERY_MS = 12 * 3_600_000;

export const inboxStep: RouterStep = async (ctx) => {
  const { knex } = ctx.services.db;
  if (ctx.contact.status !== 'active') return 'inbox';
  const recent = await knex('inbound_messages')
    .where('contact_id', ctx.contact.id)
    .where('route', 'inbox')
    .where('received_at', '>=', new Date(ctx.message.receivedAt.getTime() - ACK_EVERY_MS))
    .whereNot('id', ctx.message.id)
    .first('id');
  if (!recent) {
    const w = wording('inbox-ack', [ctx.contact.language, ctx.services.config.DEFAULT_LANGUAGE]);
    await enqueue(knex, { contactId: ctx.contact.id, purpose: 'reply', content: { type: 'text', text: w.text }, language: w.language, channel: ctx.address.medium, addressId: ctx.address.id });
  }
  return 'inbox';
};
