/**
 * The one small interface every provider adapter implements (WhatsApp Cloud API, Twilio,
 * Africa's Talking, the simulator): send, parse inbound, parse status, verify. The dispatcher
 * and the webhooks know only this.
 */
import type { ChannelName, Medium, OutboundContent, ParsedInbound } from '../messaging/types.js';

/** How the dispatcher must treat a provider error. */
export type ErrorClass =
  | 'throttled' // back off, retry later without counting an attempt
  | 'transient' // retry with backoff, then fail
  | 'permanent' // fail now
  | 'opted_out' // the provider says this person opted out: stop the contact on this channel
  | 'window_closed' // WhatsApp 131047: outside the 24-hour window, a template is needed
  | 'auth'; // credentials or configuration: alert, keep the message queued

export interface ProviderError {
  class: ErrorClass;
  code: string;
  detail: string;
  retryAfterMs?: number;
}

export interface SendRequest {
  /** E.164 phone, or Meta user_id for WhatsApp username users. */
  to: string;
  toKind: 'phone' | 'wa_user';
  content: OutboundContent;
  /** Echoed back in status callbacks where the provider supports it (WhatsApp biz_opaque_callback_data). */
  callbackData?: string;
  /** The message's language: SMS renders the "Reply 1, 2 or 3" line of buttons and lists in it. */
  language?: string | null;
}

export type SendResult = { ok: true; providerId: string; segments?: number } | { ok: false; error: ProviderError };

/** A delivery status as a provider reports it. Statuses only move forward: sent → delivered → read; failed is final. */
export interface StatusUpdate {
  channel: ChannelName;
  providerId: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  at: Date;
  error?: ProviderError;
  callbackData?: string;
}

export interface WebhookRequest {
  method: string;
  /** The path as the provider called it, e.g. /webhooks/twilio/status */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: string;
  /** Parsed form or JSON body. */
  body: unknown;
  query: Record<string, unknown>;
}

/**
 * A person's address changed at the provider: WhatsApp's `user_changed_number` (a new phone number)
 * and `user_changed_user_id` (a new business-scoped user id) system messages.
 */
export interface AddressChange {
  medium: Medium;
  from: string;
  to: string;
  toKind: 'phone' | 'wa_user';
  at: Date;
}

export type WebhookResult =
  /** `ignored`: items of a verified batch that were skipped (reactions, unknown statuses, malformed items). */
  | { ok: true; messages: ParsedInbound[]; statuses: StatusUpdate[]; addressChanges?: AddressChange[]; ignored?: number }
  | { ok: false; status: 400 | 401 | 403; reason: string };

export interface ChannelAdapter {
  readonly name: ChannelName;
  readonly medium: Medium;
  /** Messages per second the provider allows this sender (SMS: segments per second). */
  readonly ratePerSecond: number;
  send(req: SendRequest): Promise<SendResult>;
  /** Verifies the request's signature (or path secret) and parses its messages and statuses. */
  parseWebhook(req: WebhookRequest): WebhookResult;
}
