/**
 * WhatsApp Cloud API (Meta).
 *
 * Send: POST {WHATSAPP_API_URL}/{WHATSAPP_PHONE_NUMBER_ID}/messages with a Bearer token and JSON:
 * text, template (name, language, body parameters), interactive reply buttons and lists. Content
 * that breaks Meta's limits is refused before any request, with the reason. A phone number goes in
 * `to` (digits, no '+'); a username user, known only by their business-scoped user id (BSUID), goes
 * in `recipient`. The outbox id travels as `biz_opaque_callback_data` and comes back in statuses.
 * Errors are classified by `error.code`, never by HTTP status alone.
 *
 * Webhook: GET answers Meta's verification handshake; POST carries messages and statuses,
 * signed with X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256(raw body, app secret). Every
 * entry, change, message and status of a batch is read.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import type { OutboundContent, OutboundMedia, ParsedInbound } from '../messaging/types.js';
import type { AddressChange, ChannelAdapter, ErrorClass, ProviderError, SendRequest, SendResult, StatusUpdate, WebhookRequest, WebhookResult } from './types.js';
import { ProviderHttp, networkError, parseJson, retryAfterMs, shortDetail, type HttpOptions } from './http.js';
import { e164, fromEpochSeconds, header, isRecord, providerId, safeEqual, str } from './verify.js';

export interface WhatsAppSettings {
  apiUrl: string;
  accessToken: string;
  phoneNumberId: string;
  appSecret: string;
  verifyToken: string;
  /** Messages per second this number may send (Meta's default 80, up to 1,000). */
  ratePerSecond?: number;
}

/** Meta's limits on message content (characters, as a person counts them). */
export const WHATSAPP_LIMITS = {
  textBody: 4096,
  buttonBody: 1024,
  listBody: 4096,
  buttons: 3,
  buttonTitle: 20,
  buttonId: 256,
  listRows: 10,
  rowTitle: 24,
  rowId: 200,
  rowDescription: 72,
  listButton: 20,
  templateName: 512,
  templateParam: 1024,
  callbackDataBytes: 512,
  mediaCaption: 1024,
} as const;

const THROTTLED = new Set([4, 80007, 130429, 131048, 131056, 133016]);
const TRANSIENT = new Set([1, 2, 131000, 131016, 131053]);
const PERMANENT = new Set([100, 131008, 131009, 131021, 131026, 131030, 131051, 131052, 131062, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 132068, 132069, 135000]);
const AUTH = new Set([3, 10, 190, 131005, 131031]);

/**
 * How the dispatcher must treat a WhatsApp error code:
 *   throttled 4, 80007, 130429, 131048, 131056 (pair rate), 133016 · transient 1, 2, 131000, 131016, 131053 ·
 *   window_closed 131047 · opted_out 131050 (the person stopped marketing messages) ·
 *   auth 190, 10, 200–299, 3, 131005, 131031 · permanent 131026, 131030, 132000, 132001 and the other
 *   parameter/template errors; an unknown code falls back on the HTTP status.
 */
export function classifyWhatsAppError(code: number | undefined, httpStatus?: number): ErrorClass {
  if (code !== undefined) {
    if (THROTTLED.has(code)) return 'throttled';
    if (TRANSIENT.has(code)) return 'transient';
    if (code === 131047) return 'window_closed';
    if (code === 131050) return 'opted_out';
    if (AUTH.has(code) || (code >= 200 && code <= 299)) return 'auth';
    if (PERMANENT.has(code)) return 'permanent';
  }
  if (httpStatus === 429) return 'throttled';
  if (httpStatus === 401 || httpStatus === 403) return 'auth';
  if (httpStatus !== undefined && (httpStatus >= 500 || httpStatus === 408)) return 'transient';
  return 'permanent';
}

function providerError(code: number | undefined, httpStatus: number | undefined, detail: string, retryAfter?: number): ProviderError {
  const cls = classifyWhatsAppError(code, httpStatus);
  const err: ProviderError = { class: cls, code: code !== undefined ? String(code) : httpStatus === undefined ? 'unknown' : `http_${httpStatus}`, detail: shortDetail(detail) };
  if (retryAfter !== undefined) err.retryAfterMs = retryAfter;
  else if (code === 131056) err.retryAfterMs = 6_000; // pair rate: about one message per 6 s to one person
  return err;
}

/** Characters as a person counts them (code points). */
function chars(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Whether `s` has more than `max` characters (no string has more characters than UTF-16 units). */
function longer(s: string, max: number): boolean {
  return s.length > max && chars(s) > max;
}

/** Adds to `p` why `v` cannot be the field: not text, empty, or too long. */
function need(p: string[], v: unknown, field: string, max: number): void {
  if (typeof v !== 'string' || v.trim() === '') p.push(`${field} is empty`);
  else if (longer(v, max)) p.push(`${field} has ${chars(v)} characters; WhatsApp allows ${max}`);
}

/** The reasons Meta would refuse this content, one per problem; empty when it can be sent. */
export function validateWhatsAppContent(content: OutboundContent): string[] {
  const p: string[] = [];
  const L = WHATSAPP_LIMITS;
  switch (content.type) {
    case 'text':
      if (content.media === undefined) need(p, content.text, 'text', L.textBody);
      else p.push(...mediaProblems(content.media, content.text));
      break;
    case 'template':
      if (typeof content.name !== 'string' || !/^[a-z0-9_]{1,512}$/.test(content.name)) p.push('template name must be lower-case letters, digits and underscores');
      if (typeof content.language !== 'string' || !/^[a-z]{2,3}(_[A-Za-z]{2,4})?$/.test(content.language)) p.push('template language must be a code such as es or en_US');
      if (!Array.isArray(content.params)) p.push('template params must be a list');
      else
        content.params.forEach((v, i) => {
          need(p, v, `template parameter ${i + 1}`, L.templateParam);
          if (typeof v === 'string' && (/[\n\t]/.test(v) || / {5,}/.test(v))) p.push(`template parameter ${i + 1} must not contain line breaks, tabs or more than four spaces in a row`);
        });
      break;
    case 'buttons': {
      need(p, content.text, 'text', L.buttonBody);
      const buttons = Array.isArray(content.buttons) ? content.buttons : [];
      if (buttons.length < 1 || buttons.length > L.buttons) p.push(`reply buttons: ${buttons.length} given; WhatsApp allows 1 to ${L.buttons}`);
      buttons.forEach((b, i) => {
        need(p, b?.title, `button ${i + 1} title`, L.buttonTitle);
        need(p, b?.id, `button ${i + 1} id`, L.buttonId);
      });
      const titles = buttons.map((b) => String(b?.title ?? '').trim().toLowerCase());
      if (new Set(titles).size !== titles.length) p.push('button titles must be different from each other');
      const ids = buttons.map((b) => b?.id);
      if (new Set(ids).size !== ids.length) p.push('button ids must be different from each other');
      break;
    }
    case 'list': {
      need(p, content.text, 'text', L.listBody);
      need(p, content.button, 'list button label', L.listButton);
      const rows = Array.isArray(content.rows) ? content.rows : [];
      if (rows.length < 1 || rows.length > L.listRows) p.push(`list rows: ${rows.length} given; WhatsApp allows 1 to ${L.listRows}`);
      rows.forEach((r, i) => {
        need(p, r?.title, `row ${i + 1} title`, L.rowTitle);
        need(p, r?.id, `row ${i + 1} id`, L.rowId);
        if (r?.description !== undefined && r.description !== '') need(p, r.description, `row ${i + 1} description`, L.rowDescription);
      });
      const ids = rows.map((r) => r?.id);
      if (new Set(ids).size !== ids.length) p.push('row ids must be different from each other');
      break;
    }
    default:
      p.push(`content type ${JSON.stringify((content as { type?: unknown }).type)} is not one WhatsApp can send`);
  }
  return p;
}

/** Problems with a media message: the file (a https URL or a media id) and the caption's length. */
function mediaProblems(m: OutboundMedia, caption: string): string[] {
  const p: string[] = [];
  if (!m || !['image', 'document', 'audio'].includes(m.kind)) return ['media kind must be image, document or audio'];
  if (m.id !== undefined ? !/^[A-Za-z0-9_.-]{1,128}$/.test(m.id) : typeof m.url !== 'string' || !/^https:\/\/\S{1,2000}$/.test(m.url)) p.push('media needs a https:// URL or a WhatsApp media id');
  if (m.kind !== 'audio' && typeof caption === 'string' && longer(caption, WHATSAPP_LIMITS.mediaCaption)) p.push(`caption has ${chars(caption)} characters; WhatsApp allows ${WHATSAPP_LIMITS.mediaCaption}`);
  if (m.filename !== undefined && (typeof m.filename !== 'string' || m.filename.length > 240)) p.push('media file name must be at most 240 characters');
  return p;
}

/** The JSON body of a Cloud API send request. Throws when the recipient is not an address WhatsApp knows. */
export function whatsappPayload(req: SendRequest): Record<string, unknown> {
  const payload: Record<string, unknown> = { messaging_product: 'whatsapp', recipient_type: 'individual' };
  if (req.toKind === 'wa_user') {
    if (!/^[A-Z]{2}\.[A-Za-z0-9.]{1,160}$/.test(req.to)) throw new Error('the WhatsApp user id is not a business-scoped user id');
    payload.recipient = req.to;
  } else {
    const phone = e164(req.to);
    if (!phone) throw new Error('the recipient is not an E.164 phone number');
    payload.to = phone.slice(1);
  }
  const c = req.content;
  switch (c.type) {
    case 'text':
      if (c.media) {
        // An image or document carries the text as its caption; a voice note goes alone.
        const m = c.media;
        const object: Record<string, unknown> = m.id ? { id: m.id } : { link: m.url };
        if (m.kind !== 'audio' && c.text.trim() !== '') object.caption = c.text;
        if (m.kind === 'document' && m.filename) object.filename = m.filename;
        payload.type = m.kind;
        payload[m.kind] = object;
        break;
      }
      payload.type = 'text';
      payload.text = { preview_url: false, body: c.text };
      break;
    case 'template':
      payload.type = 'template';
      payload.template = {
        name: c.name,
        language: { code: c.language },
        ...(c.params.length ? { components: [{ type: 'body', parameters: c.params.map((text) => ({ type: 'text', text })) }] } : {}),
      };
      break;
    case 'buttons':
      payload.type = 'interactive';
      payload.interactive = {
        type: 'button',
        body: { text: c.text },
        action: { buttons: c.buttons.map((b) => ({ type: 'reply', reply: { id: b.id, title: b.title } })) },
      };
      break;
    case 'list':
      payload.type = 'interactive';
      payload.interactive = {
        type: 'list',
        body: { text: c.text },
        action: {
          button: c.button,
          sections: [{ rows: c.rows.map((r) => ({ id: r.id, title: r.title, ...(r.description ? { description: r.description } : {}) })) }],
        },
      };
      break;
  }
  if (req.callbackData !== undefined) payload.biz_opaque_callback_data = req.callbackData;
  return payload;
}

export class WhatsAppChannel implements ChannelAdapter {
  readonly name = 'whatsapp' as const;
  readonly medium = 'whatsapp' as const;
  readonly ratePerSecond: number;
  private readonly http: ProviderHttp;
  /** The send path and headers, the same for every request. */
  private readonly path: string;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(readonly settings: WhatsAppSettings, http: HttpOptions = {}) {
    this.ratePerSecond = settings.ratePerSecond ?? 80;
    this.http = new ProviderHttp(settings.apiUrl, http);
    this.path = `/${encodeURIComponent(settings.phoneNumberId)}/messages`;
    this.headers = Object.freeze({ authorization: `Bearer ${settings.accessToken}`, 'content-type': 'application/json' });
  }

  static fromConfig(config: Config, http?: HttpOptions, ratePerSecond?: number): WhatsAppChannel | undefined {
    if (!config.channels.whatsapp || !config.WHATSAPP_ACCESS_TOKEN || !config.WHATSAPP_PHONE_NUMBER_ID || !config.WHATSAPP_APP_SECRET || !config.WHATSAPP_VERIFY_TOKEN) return undefined;
    return new WhatsAppChannel(
      { apiUrl: config.WHATSAPP_API_URL!, accessToken: config.WHATSAPP_ACCESS_TOKEN, phoneNumberId: config.WHATSAPP_PHONE_NUMBER_ID, appSecret: config.WHATSAPP_APP_SECRET, verifyToken: config.WHATSAPP_VERIFY_TOKEN, ratePerSecond },
      http,
    );
  }

  async send(req: SendRequest): Promise<SendResult> {
    const problems = validateWhatsAppContent(req.content);
    // At most 3 bytes per UTF-16 unit: the byte count is needed only for long data.
    if (req.callbackData !== undefined && req.callbackData.length * 3 > WHATSAPP_LIMITS.callbackDataBytes && Buffer.byteLength(req.callbackData) > WHATSAPP_LIMITS.callbackDataBytes) problems.push(`callback data is longer than ${WHATSAPP_LIMITS.callbackDataBytes} bytes`);
    let payload: Record<string, unknown> | undefined;
    if (problems.length === 0) {
      try {
        payload = whatsappPayload(req);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (!payload || problems.length) return { ok: false, error: { class: 'permanent', code: 'invalid_content', detail: shortDetail(problems.join('; ')) } };
    let res;
    try {
      res = await this.http.post(this.path, this.headers, JSON.stringify(payload));
    } catch (err) {
      return { ok: false, error: networkError(err) };
    }
    const body = parseJson(res.text);
    if (res.status >= 200 && res.status < 300) {
      const id = isRecord(body) && Array.isArray(body.messages) && isRecord(body.messages[0]) ? str(body.messages[0].id, 200) : undefined;
      if (id) return { ok: true, providerId: id };
      return { ok: false, error: { class: 'permanent', code: 'no_message_id', detail: 'WhatsApp accepted the request without a message id' } };
    }
    const e = isRecord(body) && isRecord(body.error) ? body.error : undefined;
    const code = e && typeof e.code === 'number' ? e.code : e && typeof e.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : undefined;
    const details = e && isRecord(e.error_data) ? str(e.error_data.details) : undefined;
    return { ok: false, error: providerError(code, res.status, details ?? (e ? str(e.message) : undefined) ?? `HTTP ${res.status}`, retryAfterMs(res.headers)) };
  }

  /** X-Hub-Signature-256 over the raw body, compared in constant time. */
  verifySignature(rawBody: string, signature: string | undefined): boolean {
    if (!signature || !/^sha256=[0-9a-fA-F]{64}$/.test(signature)) return false;
    const expected = createHmac('sha256', this.settings.appSecret).update(rawBody, 'utf8').digest();
    return timingSafeEqual(expected, Buffer.from(signature.slice(7), 'hex'));
  }

  /** Meta's GET handshake: hub.mode=subscribe and our verify token → 200 with hub.challenge; else 403. */
  verificationChallenge(query: Record<string, unknown>): { status: 200 | 403; body: string } {
    const one = (v: unknown) => (Array.isArray(v) ? v[0] : v);
    const mode = one(query['hub.mode']);
    const token = one(query['hub.verify_token']);
    const challenge = one(query['hub.challenge']);
    if (mode === 'subscribe' && typeof token === 'string' && safeEqual(token, this.settings.verifyToken) && typeof challenge === 'string' && challenge.length > 0 && challenge.length <= 256) {
      return { status: 200, body: challenge };
    }
    return { status: 403, body: 'Forbidden' };
  }

  parseWebhook(req: WebhookRequest): WebhookResult {
    if (!this.verifySignature(req.rawBody, header(req.headers, 'x-hub-signature-256'))) {
      return { ok: false, status: 401, reason: 'the X-Hub-Signature-256 signature is missing or does not match' };
    }
    const body = isRecord(req.body) ? req.body : parseJson(req.rawBody);
    if (!isRecord(body) || !Array.isArray(body.entry)) return { ok: false, status: 400, reason: 'the body is not a WhatsApp webhook (no entry list)' };
    return parseWhatsAppNotification(body);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

/** Reads every entry, change, message and status of a verified notification. */
export function parseWhatsAppNotification(body: Record<string, unknown>, now = new Date()): WebhookResult & { ok: true } {
  const messages: ParsedInbound[] = [];
  const statuses: StatusUpdate[] = [];
  const addressChanges: AddressChange[] = [];
  let ignored = 0;
  for (const entry of body.entry as unknown[]) {
    if (!isRecord(entry) || !Array.isArray(entry.changes)) {
      ignored++;
      continue;
    }
    for (const change of entry.changes) {
      if (!isRecord(change) || !isRecord(change.value) || (change.field !== undefined && change.field !== 'messages')) {
        ignored++;
        continue;
      }
      const value = change.value;
      const names = new Map<string, string>();
      const contacts = Array.isArray(value.contacts) ? value.contacts.filter(isRecord) : [];
      for (const c of contacts) {
        const name = isRecord(c.profile) ? str(c.profile.name, 200) : undefined;
        if (!name) continue;
        for (const key of [str(c.wa_id, 64), str(c.user_id, 200)]) if (key) names.set(key, name);
      }
      for (const m of Array.isArray(value.messages) ? value.messages : []) {
        const change = parseAddressChange(m, now);
        if (change) {
          addressChanges.push(change);
          continue;
        }
        const parsed = parseMessage(m, contacts, names, now);
        if (parsed) messages.push(parsed);
        else ignored++;
      }
      for (const s of Array.isArray(value.statuses) ? value.statuses : []) {
        const parsed = parseStatus(s, now);
        if (parsed) statuses.push(parsed);
        else ignored++;
      }
    }
  }
  return { ok: true, messages, statuses, addressChanges, ignored };
}

const BSUID = /^[A-Z]{2}\.[A-Za-z0-9.]{1,60}$/;

/**
 * A system message saying that a person's WhatsApp address changed: `user_changed_number` (from the
 * old phone number, `m.from`, to `system.wa_id`) or `user_changed_user_id` (from
 * `system.previous_user_id` to `system.user_id`). Anything else, or a change whose addresses do not
 * read as a phone number or a user id, is not one.
 */
function parseAddressChange(m: unknown, now: Date): AddressChange | null {
  if (!isRecord(m) || m.type !== 'system' || !isRecord(m.system)) return null;
  const sys = m.system;
  const at = fromEpochSeconds(m.timestamp, now);
  if (sys.type === 'user_changed_number') {
    const from = e164(m.from);
    const to = e164(sys.wa_id);
    return from && to && from !== to ? { medium: 'whatsapp', from, to, toKind: 'phone', at } : null;
  }
  if (sys.type === 'user_changed_user_id') {
    const from = str(sys.previous_user_id, 200);
    const to = str(sys.user_id, 200);
    return from && to && from !== to && BSUID.test(from) && BSUID.test(to) ? { medium: 'whatsapp', from, to, toKind: 'wa_user', at } : null;
  }
  return null;
}

function parseMessage(m: unknown, contacts: Record<string, unknown>[], names: Map<string, string>, now: Date): ParsedInbound | null {
  if (!isRecord(m)) return null;
  const id = providerId(m.id);
  const type = str(m.type, 64);
  if (!id || !type) return null;
  // The sender: the phone (wa_id) when Meta shares it, else the business-scoped user id.
  const phone = e164(m.from);
  let userId = str(m.from_user_id, 200);
  if (!phone && !userId && typeof m.from === 'string' && BSUID.test(m.from)) userId = m.from;
  if (!phone && !userId && contacts.length === 1) userId = str(contacts[0].user_id, 200);
  if (!phone && (!userId || !BSUID.test(userId))) return null;
  const from = phone ?? userId!;
  const base = {
    channel: 'whatsapp' as const,
    medium: 'whatsapp' as const,
    providerId: id,
    from,
    fromKind: phone ? ('phone' as const) : ('wa_user' as const),
    receivedAt: fromEpochSeconds(m.timestamp, now),
  };
  const profileName = names.get(phone ? phone.slice(1) : from) ?? (userId ? names.get(userId) : undefined);
  const withName = profileName ? { ...base, profileName } : base;
  const payload = (v: unknown) => {
    const s = str(v, 100_000);
    return s === undefined ? null : s.slice(0, 256);
  };
  switch (type) {
    case 'text': {
      const text = isRecord(m.text) ? str(m.text.body) : undefined;
      if (text === undefined) return null;
      return { ...withName, kind: 'text', text, payload: null };
    }
    case 'interactive': {
      const i = isRecord(m.interactive) ? m.interactive : undefined;
      if (i && isRecord(i.button_reply)) return { ...withName, kind: 'button', text: str(i.button_reply.title) ?? null, payload: payload(i.button_reply.id) };
      if (i && isRecord(i.list_reply)) return { ...withName, kind: 'list', text: str(i.list_reply.title) ?? null, payload: payload(i.list_reply.id) };
      return { ...withName, kind: 'other', text: null, payload: null };
    }
    case 'button': {
      // A quick-reply button on a template message.
      const b = isRecord(m.button) ? m.button : undefined;
      if (!b) return null;
      return { ...withName, kind: 'button', text: str(b.text) ?? null, payload: payload(b.payload ?? b.text) };
    }
    case 'image':
    case 'audio':
    case 'video':
    case 'document':
    case 'sticker': {
      const media = isRecord(m[type]) ? (m[type] as Record<string, unknown>) : undefined;
      return { ...withName, kind: 'media', text: (media && str(media.caption)) ?? null, payload: null };
    }
    case 'reaction':
    case 'system':
    case 'request_welcome':
      // Not something a person wrote: a reaction to our message, a number change notice, a chat opened.
      return null;
    default:
      // location, contacts, order, unsupported …: kept so that staff can see someone wrote.
      return { ...withName, kind: 'other', text: null, payload: null };
  }
}

const STATUSES = new Set(['sent', 'delivered', 'read', 'failed']);

function parseStatus(s: unknown, now: Date): StatusUpdate | null {
  if (!isRecord(s)) return null;
  const id = providerId(s.id);
  const status = str(s.status, 32);
  if (!id || !status || !STATUSES.has(status)) return null;
  const update: StatusUpdate = { channel: 'whatsapp', providerId: id, status: status as StatusUpdate['status'], at: fromEpochSeconds(s.timestamp, now) };
  const cb = str(s.biz_opaque_callback_data, 512);
  if (cb) update.callbackData = cb;
  if (status === 'failed') {
    const e = Array.isArray(s.errors) && isRecord(s.errors[0]) ? s.errors[0] : undefined;
    const code = e && typeof e.code === 'number' ? e.code : e && typeof e.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : undefined;
    const detail = e ? (isRecord(e.error_data) ? str(e.error_data.details) : undefined) ?? str(e.title) ?? str(e.message) : undefined;
    update.error = providerError(code, undefined, detail ?? 'failed without a reason');
    // A delivery that failed is not retried as "throttled" at once: the dispatcher decides from the class.
  }
  return update;
}
