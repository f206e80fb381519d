/**
 * Twilio Programmable Messaging (SMS).
 *
 * Send: POST {TWILIO_API_URL}/2010-04-01/Accounts/{Sid}/Messages.json, Basic auth (Sid:AuthToken),
 * form To, From or MessagingServiceSid, Body (≤ 1,600 characters), StatusCallback =
 * PUBLIC_URL + /webhooks/twilio/status. Buttons and lists are rendered as numbered options.
 *
 * Webhooks: inbound messages at /webhooks/twilio and status callbacks at /webhooks/twilio/status,
 * both form-encoded and signed: X-Twilio-Signature = base64 HMAC-SHA1(auth token, PUBLIC_URL + path
 * + every POST parameter sorted by name, name then value). Unknown extra fields are accepted (and
 * signed like the rest).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import type { ParsedInbound } from '../messaging/types.js';
import type { ChannelAdapter, ErrorClass, ProviderError, SendRequest, SendResult, StatusUpdate, WebhookRequest, WebhookResult } from './types.js';
import { ProviderHttp, networkError, parseJson, retryAfterMs, shortDetail, type HttpOptions } from './http.js';
import { e164, header, isRecord, parseForm, providerId, str } from './verify.js';
import { measureSms, renderSms } from './sms.js';

export interface TwilioSettings {
  apiUrl: string;
  accountSid: string;
  authToken: string;
  from?: string;
  messagingServiceSid?: string;
  /** PUBLIC_URL: where Twilio calls us, and what its signatures cover. */
  publicUrl: string;
  /** Segments per second (default 10). */
  ratePerSecond?: number;
}

export const TWILIO_BODY_LIMIT = 1600;
export const TWILIO_STATUS_PATH = '/webhooks/twilio/status';

const CODES: Record<number, ErrorClass> = {
  20429: 'throttled', // too many requests
  30001: 'throttled', // queue overflow
  21611: 'throttled', // the sender's queue is full
  30022: 'throttled', // US A2P 10DLC throughput exceeded
  21610: 'opted_out', // the recipient replied STOP
  20003: 'auth', // authentication failed
  20005: 'auth', // account not active
  20008: 'auth', // test credentials
  21212: 'auth', // From is not a valid number
  21606: 'auth', // From is not a number of this account
  21659: 'auth', // From is not a Twilio number
  21703: 'auth', // messaging service has no senders
  30002: 'auth', // account suspended
  30032: 'auth', // toll-free number not verified
  30034: 'auth', // US A2P 10DLC number not registered
  30003: 'transient', // handset unreachable (off, out of coverage)
  30008: 'transient', // unknown error
  30009: 'transient', // missing segment
  30010: 'transient', // message price exceeds max price
  30410: 'transient', // provider timeout
  30500: 'transient',
  21211: 'permanent', // invalid To
  21214: 'permanent', // To cannot be reached
  21217: 'permanent',
  21408: 'permanent', // no permission to send to that region
  21602: 'permanent', // empty body
  21604: 'permanent',
  21612: 'permanent', // cannot route to this To
  21614: 'permanent', // To is not a mobile number
  21617: 'permanent', // body longer than 1,600 characters
  30004: 'permanent', // blocked
  30005: 'permanent', // unknown destination handset
  30006: 'permanent', // landline or unreachable carrier
  30007: 'permanent', // filtered by the carrier
};

/** Twilio error codes → how to treat them: 20429/429 throttled, 21610 opted_out, auth and account codes pause the channel. */
export function classifyTwilioError(code: number | undefined, httpStatus?: number): ErrorClass {
  if (code !== undefined && CODES[code]) return CODES[code];
  if (httpStatus === 429) return 'throttled';
  if (httpStatus === 401 || httpStatus === 403) return 'auth';
  if (httpStatus !== undefined && (httpStatus >= 500 || httpStatus === 408)) return 'transient';
  if (code !== undefined && code >= 30000 && code < 31000) return 'transient';
  return 'permanent';
}

function providerError(code: number | undefined, httpStatus: number | undefined, detail: string, retryAfter?: number): ProviderError {
  const err: ProviderError = { class: classifyTwilioError(code, httpStatus), code: code !== undefined ? String(code) : httpStatus === undefined ? 'unknown' : `http_${httpStatus}`, detail: shortDetail(detail) };
  if (retryAfter !== undefined) err.retryAfterMs = retryAfter;
  return err;
}

function asCode(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\d{1,6}$/.test(v.trim())) return Number(v.trim());
  return undefined;
}

/** The signature Twilio sends for a URL and its POST parameters (repeated names: each distinct value, sorted). */
export function twilioSignature(authToken: string, url: string, pairs: readonly (readonly [string, string])[]): string {
  const byName = new Map<string, Set<string>>();
  for (const [k, v] of pairs) {
    const set = byName.get(k) ?? new Set<string>();
    set.add(v);
    byName.set(k, set);
  }
  let data = url;
  for (const k of [...byName.keys()].sort()) for (const v of [...byName.get(k)!].sort()) data += k + v;
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf-8')).digest('base64');
}

/** The URL as configured, with and without the scheme's default port: Twilio signs what it was given. */
function urlVariants(url: string): string[] {
  const out = new Set([url]);
  try {
    const u = new URL(url);
    const port = u.protocol === 'https:' ? '443' : '80';
    const rest = url.slice(url.indexOf(u.host) + u.host.length);
    const prefix = `${u.protocol}//${u.username ? `${u.username}${u.password ? ':' + u.password : ''}@` : ''}`;
    if (u.port) out.add(prefix + u.hostname + rest);
    else out.add(prefix + u.hostname + ':' + port + rest);
  } catch {
    // not a URL: only the string itself
  }
  return [...out];
}

export class TwilioChannel implements ChannelAdapter {
  readonly name = 'twilio' as const;
  readonly medium = 'sms' as const;
  readonly ratePerSecond: number;
  private readonly http: ProviderHttp;
  private readonly auth: string;
  private readonly path: string;

  constructor(readonly settings: TwilioSettings, http: HttpOptions = {}) {
    if (!settings.from && !settings.messagingServiceSid) throw new Error('Twilio needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID');
    this.ratePerSecond = settings.ratePerSecond ?? 10;
    this.http = new ProviderHttp(settings.apiUrl, http);
    this.auth = 'Basic ' + Buffer.from(`${settings.accountSid}:${settings.authToken}`).toString('base64');
    this.path = `/2010-04-01/Accounts/${encodeURIComponent(settings.accountSid)}/Messages.json`;
  }

  static fromConfig(config: Config, http?: HttpOptions, ratePerSecond?: number): TwilioChannel | undefined {
    if (!config.channels.twilio || !config.TWILIO_ACCOUNT_SID || !config.TWILIO_AUTH_TOKEN || (!config.TWILIO_FROM && !config.TWILIO_MESSAGING_SERVICE_SID)) return undefined;
    return new TwilioChannel(
      { apiUrl: config.TWILIO_API_URL!, accountSid: config.TWILIO_ACCOUNT_SID, authToken: config.TWILIO_AUTH_TOKEN, from: config.TWILIO_FROM, messagingServiceSid: config.TWILIO_MESSAGING_SERVICE_SID, publicUrl: config.PUBLIC_URL, ratePerSecond },
      http,
    );
  }

  /** The form Twilio receives for this request (throws when the recipient or body cannot be sent). */
  form(req: SendRequest): Record<string, string> {
    const to = req.toKind === 'phone' ? e164(req.to) : undefined;
    if (!to) throw new Error('the recipient is not an E.164 phone number');
    const body = renderSms(req.content, req.language);
    if (body.trim() === '') throw new Error('the message is empty');
    if ([...body].length > TWILIO_BODY_LIMIT) throw new Error(`the message has ${[...body].length} characters; Twilio allows ${TWILIO_BODY_LIMIT}`);
    const form: Record<string, string> = { To: to };
    if (this.settings.messagingServiceSid) form.MessagingServiceSid = this.settings.messagingServiceSid;
    else form.From = this.settings.from!;
    form.Body = body;
    form.StatusCallback = this.settings.publicUrl + TWILIO_STATUS_PATH;
    return form;
  }

  async send(req: SendRequest): Promise<SendResult> {
    let form: Record<string, string>;
    try {
      form = this.form(req);
    } catch (e) {
      return { ok: false, error: { class: 'permanent', code: 'invalid_content', detail: shortDetail((e as Error).message) } };
    }
    let res;
    try {
      res = await this.http.post(this.path, { authorization: this.auth, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, new URLSearchParams(form).toString());
    } catch (err) {
      return { ok: false, error: networkError(err) };
    }
    const body = parseJson(res.text);
    if (res.status >= 200 && res.status < 300) {
      const sid = isRecord(body) ? str(body.sid, 200) : undefined;
      if (sid) return { ok: true, providerId: sid, segments: measureSms(form.Body).segments };
      return { ok: false, error: { class: 'permanent', code: 'no_message_id', detail: 'Twilio accepted the request without a message sid' } };
    }
    const code = isRecord(body) ? asCode(body.code) : undefined;
    const message = isRecord(body) ? str(body.message) : undefined;
    return { ok: false, error: providerError(code, res.status, message ?? `HTTP ${res.status}`, retryAfterMs(res.headers)) };
  }

  /** X-Twilio-Signature over PUBLIC_URL + the path as called + the form parameters. */
  verifySignature(pathAndQuery: string, pairs: readonly (readonly [string, string])[], signature: string | undefined): boolean {
    if (!signature || signature.length > 100) return false;
    const given = Buffer.from(signature);
    for (const url of urlVariants(this.settings.publicUrl + pathAndQuery)) {
      const expected = Buffer.from(twilioSignature(this.settings.authToken, url, pairs));
      if (expected.length === given.length && timingSafeEqual(expected, given)) return true;
    }
    return false;
  }

  parseWebhook(req: WebhookRequest): WebhookResult {
    const form = parseForm(req.rawBody);
    if (!form) return { ok: false, status: 400, reason: 'the body is not a form' };
    if (!this.verifySignature(req.path, form.pairs, header(req.headers, 'x-twilio-signature'))) {
      return { ok: false, status: 401, reason: 'the X-Twilio-Signature signature is missing or does not match' };
    }
    const f = form.fields;
    const isStatus = req.path.split('?')[0].replace(/\/+$/, '').endsWith('/status');
    return isStatus ? parseTwilioStatus(f) : parseTwilioInbound(f);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

/** An inbound SMS form (MessageSid, From, To, Body, NumMedia, OptOutType …). */
export function parseTwilioInbound(f: Record<string, string>, now = new Date()): WebhookResult {
  const sid = providerId(f.MessageSid) ?? providerId(f.SmsMessageSid) ?? providerId(f.SmsSid);
  if (!sid) return { ok: false, status: 400, reason: 'MessageSid is missing' };
  const from = e164(f.From);
  if (!from) return { ok: false, status: 400, reason: 'From is not a phone number' };
  const numMedia = /^\d+$/.test(f.NumMedia ?? '') ? Number(f.NumMedia) : 0;
  const text = typeof f.Body === 'string' ? f.Body : '';
  const message: ParsedInbound = {
    channel: 'twilio',
    medium: 'sms',
    providerId: sid,
    from,
    fromKind: 'phone',
    kind: numMedia > 0 ? 'media' : 'text',
    text: numMedia > 0 && text === '' ? null : text,
    payload: null,
    receivedAt: now,
  };
  return { ok: true, messages: [message], statuses: [] };
}

const TWILIO_STATUS: Record<string, StatusUpdate['status']> = { sent: 'sent', delivered: 'delivered', read: 'read', undelivered: 'failed', failed: 'failed' };

/** A status callback form (MessageSid, MessageStatus, ErrorCode). queued/sending/accepted are not news. */
export function parseTwilioStatus(f: Record<string, string>, now = new Date()): WebhookResult {
  const sid = providerId(f.MessageSid) ?? providerId(f.SmsSid);
  if (!sid) return { ok: false, status: 400, reason: 'MessageSid is missing' };
  const raw = str(f.MessageStatus, 32) ?? str(f.SmsStatus, 32);
  if (!raw) return { ok: false, status: 400, reason: 'MessageStatus is missing' };
  const status = TWILIO_STATUS[raw.toLowerCase()];
  if (!status) return { ok: true, messages: [], statuses: [], ignored: 1 };
  const update: StatusUpdate = { channel: 'twilio', providerId: sid, status, at: now };
  if (status === 'failed') {
    const code = asCode(f.ErrorCode);
    update.error = providerError(code, undefined, str(f.ErrorMessage, 500) ?? (code !== undefined ? `Twilio error ${code}` : `message ${raw}`));
  }
  return { ok: true, messages: [], statuses: [update] };
}
