/**
 * The shapes that cross domain lines in messaging: what a channel adapter hands the inbound
 * pipeline, what the router gives each step, and what any domain can put in the outbox.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/orm.js';
import type { Logger } from '../log.js';

/** Channels as stored on addresses: the medium. */
export type Medium = 'whatsapp' | 'sms';
/** Channels as adapters: the provider that carried a message. */
export type ChannelName = 'whatsapp' | 'twilio' | 'africastalking' | 'simulator';

export function mediumOf(channel: ChannelName, simulatorMedium: Medium = 'sms'): Medium {
  return channel === 'whatsapp' ? 'whatsapp' : channel === 'simulator' ? simulatorMedium : 'sms';
}

/** One inbound message as parsed from a provider's webhook, before it is stored. */
export interface ParsedInbound {
  channel: ChannelName;
  medium: Medium;
  /** The provider's id for the message; with `channel` the de-duplication key. */
  providerId: string;
  /** E.164 for phones; Meta's user_id when WhatsApp sends no phone number. */
  from: string;
  fromKind: 'phone' | 'wa_user';
  /** Display name the provider reports (WhatsApp profile), if any. */
  profileName?: string;
  kind: 'text' | 'button' | 'list' | 'media' | 'other';
  text: string | null;
  /** Button or list-row id. */
  payload?: string | null;
  receivedAt: Date;
}

/**
 * A file WhatsApp sends with a text message, by public URL or by a media id uploaded to Meta: an image or
 * a document (the text is its caption, at most 1,024 characters), or an audio voice note (sent alone:
 * WhatsApp gives audio no caption). SMS and every other channel send the text only.
 */
export interface OutboundMedia {
  kind: 'image' | 'document' | 'audio';
  url?: string;
  id?: string;
  /** Shown for a document. */
  filename?: string;
}

export type OutboundContent =
  | { type: 'text'; text: string; media?: OutboundMedia }
  /** WhatsApp reply buttons (1–3); SMS gets the text with numbered options. */
  | { type: 'buttons'; text: string; buttons: { id: string; title: string }[] }
  /** WhatsApp list (≤10 rows); SMS gets numbered options. */
  | { type: 'list'; text: string; button: string; rows: { id: string; title: string; description?: string }[] }
  /** An approved WhatsApp template (outside the 24-hour window); `text` is what SMS gets. */
  | { type: 'template'; name: string; language: string; params: string[]; text: string };

export type Purpose = 'reply' | 'updates' | 'surveys' | 'cash_programme' | 'complaint_followup';
export const PRIORITY = { reply: 1, survey: 2, broadcast: 3 } as const;

export interface RouterServices {
  config: Config;
  db: Database;
  log: Logger;
}

/** What a router step sees: the stored message, its contact and address. */
export interface InboundContext {
  services: RouterServices;
  message: {
    id: number;
    channel: ChannelName;
    medium: Medium;
    kind: ParsedInbound['kind'];
    text: string | null;
    payload: string | null;
    receivedAt: Date;
  };
  contact: { id: number; language: string | null; status: 'active' | 'stopped' | 'blocked'; isNew: boolean };
  address: { id: number; medium: Medium; address: string };
}

/**
 * A router step returns the name of its route when it handled the message, or null to pass
 * it on. Steps run in ARCHITECTURE.md's order; the first that handles it wins.
 */
export type RouterStep = (ctx: InboundContext) => Promise<string | null>;
