/**
 * Africa's Talking SMS.
 *
 * Send: POST {AFRICASTALKING_API_URL}/version1/messaging with the `apiKey` header, form username,
 * to, message, from; `Accept: application/json` (otherwise the answer is XML). The answer lists each
 * recipient with a statusCode (100–102 accepted) and a messageId.
 *
 * Webhooks: the inbound-message and delivery-report callbacks are not signed, so their URLs carry a
 * secret: /webhooks/africastalking/{AFRICASTALKING_WEBHOOK_SECRET}/inbound and …/delivery, compared
 * in constant time. Configure those two URLs in the Africa's Talking dashboard.
 */
import type { Config } from '../config.js';
import type { ParsedInbound } from '../messaging/types.js';
import type { ChannelAdapter, ErrorClass, ProviderError, SendRequest, SendResult, StatusUpdate, WebhookRequest, WebhookResult } from './types.js';
import { ProviderHttp, networkError, parseJson, retryAfterMs, shortDetail, type HttpOptions } from './http.js';
import { e164, isRecord, parseForm, plausible, providerId, safeEqual, str } from './verify.js';
import { measureSms, renderSms } from './sms.js';

export interface AfricasTalkingSettings {
  apiUrl: string;
  username: string;
  apiKey: string;
  from?: string;
  webhookSecret: string;
  /** Segments per second (default 10). */
  ratePerSecond?: number;
}

/** Per-recipient statusCode of a send. */
const SEND_CODES: Record<number, ErrorClass> = {
  401: 'auth', // RiskHold: the account is held for review
  402: 'auth', // InvalidSenderId: configuration
  403: 'permanent', // InvalidPhoneNumber
  404: 'permanent', // UnsupportedNumberType
  405: 'auth', // InsufficientBalance: top up, keep the messages queued
  406: 'opted_out', // UserInBlacklist: the person blocked this sender
  407: 'permanent', // CouldNotRoute
  409: 'opted_out', // DoNotDisturbRejection
  500: 'transient', // InternalServerError
  501: 'transient', // GatewayError
  502: 'permanent', // RejectedByGateway
};

export function classifyAfricasTalkingStatusCode(code: number | undefined, httpStatus?: number): ErrorClass {
  if (code !== undefined && SEND_CODES[code]) return SEND_CODES[code];
  if (httpStatus === 429) return 'throttled';
  if (httpStatus === 401 || httpStatus === 403) return 'auth';
  if (httpStatus !== undefined && (httpStatus >= 500 || httpStatus === 408)) return 'transient';
  return 'permanent';
}

/** failureReason of a Rejected or Failed delivery report. */
const FAILURE_REASONS: Record<string, ErrorClass> = {
  userinblacklist: 'opted_out',
  donotdisturbrejection: 'opted_out',
  deliveryfailure: 'transient',
  absentsubscriber: 'transient',
  systemerror: 'transient',
  insufficientcredit: 'permanent',
  invalidlinkid: 'permanent',
  userisinactive: 'permanent',
  useraccountsuspended: 'permanent',
  notnetworksubcriber: 'permanent',
  notnetworksubscriber: 'permanent',
  usernotsubscribedtoproduct: 'permanent',
  userdoesnotexist: 'permanent',
  rejectedbygateway: 'permanent',
};

export function classifyAfricasTalkingFailure(reason: string | undefined): ErrorClass {
  return (reason && FAILURE_REASONS[reason.toLowerCase()]) || 'permanent';
}

export class AfricasTalkingChannel implements ChannelAdapter {
  readonly name = 'africastalking' as const;
  readonly medium = 'sms' as const;
  readonly ratePerSecond: number;
  private readonly http: ProviderHttp;

  constructor(readonly settings: AfricasTalkingSettings, http: HttpOptions = {}) {
    this.ratePerSecond = settings.ratePerSecond ?? 10;
    this.http = new ProviderHttp(settings.apiUrl, http);
  }

  static fromConfig(config: Config, http?: HttpOptions, ratePerSecond?: number): AfricasTalkingChannel | undefined {
    if (!config.channels.africastalking || !config.AFRICASTALKING_USERNAME || !config.AFRICASTALKING_API_KEY || !config.AFRICASTALKING_WEBHOOK_SECRET) return undefined;
    return new AfricasTalkingChannel(
      { apiUrl: config.AFRICASTALKING_API_URL!, username: config.AFRICASTALKING_USERNAME, apiKey: config.AFRICASTALKING_API_KEY, from: config.AFRICASTALKING_FROM, webhookSecret: config.AFRICASTALKING_WEBHOOK_SECRET, ratePerSecond },
      http,
    );
  }

  form(req: SendRequest): Record<string, string> {
    const to = req.toKind === 'phone' ? e164(req.to) : undefined;
    if (!to) throw new Error('the recipient is not an E.164 phone number');
    const message = renderSms(req.content, req.language);
    if (message.trim() === '') throw new Error('the message is empty');
    const form: Record<string, string> = { username: this.settings.username, to, message };
    if (this.settings.from) form.from = this.settings.from;
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
      res = await this.http.post('/version1/messaging', { apikey: this.settings.apiKey, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams(form).toString());
    } catch (err) {
      return { ok: false, error: networkError(err) };
    }
    const body = parseJson(res.text);
    if (res.status < 200 || res.status >= 300) {
      return { ok: false, error: atError(undefined, res.status, res.text || `HTTP ${res.status}`, retryAfterMs(res.headers)) };
    }
    const data = isRecord(body) && isRecord(body.SMSMessageData) ? body.SMSMessageData : undefined;
    const r = data && Array.isArray(data.Recipients) && isRecord(data.Recipients[0]) ? data.Recipients[0] : undefined;
    if (!r) return { ok: false, error: { class: 'permanent', code: 'no_recipient', detail: shortDetail(data ? str(data.Message) ?? 'no recipient in the answer' : 'the answer is not SMSMessageData') } };
    const code = typeof r.statusCode === 'number' ? r.statusCode : Number(r.statusCode);
    const id = str(r.messageId, 200);
    if (code >= 100 && code <= 102 && id && id !== 'None') return { ok: true, providerId: id, segments: measureSms(form.message).segments };
    return { ok: false, error: atError(Number.isFinite(code) ? code : undefined, undefined, str(r.status) ?? 'rejected') };
  }

  /** The path secret, compared in constant time. */
  verifyPath(path: string): { ok: true; kind: 'inbound' | 'delivery' } | { ok: false } {
    const m = /^\/webhooks\/africastalking\/([^/?]+)\/(inbound|delivery)\/?(?:\?.*)?$/.exec(path);
    if (!m) return { ok: false };
    let secret: string;
    try {
      secret = decodeURIComponent(m[1]);
    } catch {
      return { ok: false };
    }
    return safeEqual(secret, this.settings.webhookSecret) ? { ok: true, kind: m[2] as 'inbound' | 'delivery' } : { ok: false };
  }

  parseWebhook(req: WebhookRequest): WebhookResult {
    const where = this.verifyPath(req.path);
    if (!where.ok) return { ok: false, status: 401, reason: 'the webhook secret in the path does not match' };
    const fields = readFields(req);
    if (!fields) return { ok: false, status: 400, reason: 'the body is neither a form nor a JSON object' };
    return where.kind === 'inbound' ? parseAfricasTalkingInbound(fields) : parseAfricasTalkingDelivery(fields);
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

function atError(code: number | undefined, httpStatus: number | undefined, detail: string, retryAfter?: number): ProviderError {
  const err: ProviderError = { class: classifyAfricasTalkingStatusCode(code, httpStatus), code: code !== undefined ? String(code) : httpStatus === undefined ? 'unknown' : `http_${httpStatus}`, detail: shortDetail(detail) };
  if (retryAfter !== undefined) err.retryAfterMs = retryAfter;
  return err;
}

/** Africa's Talking posts forms; JSON is accepted too. Values are read as strings. */
function readFields(req: WebhookRequest): Record<string, string> | undefined {
  const raw = req.rawBody.trimStart();
  if (raw.startsWith('{')) {
    const j = parseJson(raw);
    if (!isRecord(j)) return undefined;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(j)) if (typeof v === 'string' || typeof v === 'number') out[k] = String(v);
    return out;
  }
  return parseForm(req.rawBody)?.fields;
}

/** Inbound SMS: date, from, id, linkId, text, to, networkCode. */
export function parseAfricasTalkingInbound(f: Record<string, string>, now = new Date()): WebhookResult {
  const id = providerId(f.id);
  if (!id) return { ok: false, status: 400, reason: 'id is missing' };
  const from = e164(f.from);
  if (!from) return { ok: false, status: 400, reason: 'from is not a phone number' };
  // "2026-11-22 15:30:12" (UTC), or ISO.
  const receivedAt = f.date ? plausible(new Date(/^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?$/.test(f.date) ? f.date.replace(' ', 'T') + 'Z' : f.date), now) : now;
  const message: ParsedInbound = { channel: 'africastalking', medium: 'sms', providerId: id, from, fromKind: 'phone', kind: 'text', text: typeof f.text === 'string' ? f.text : '', payload: null, receivedAt };
  return { ok: true, messages: [message], statuses: [] };
}

const AT_STATUS: Record<string, StatusUpdate['status']> = { sent: 'sent', submitted: 'sent', buffered: 'sent', success: 'delivered', rejected: 'failed', failed: 'failed', expired: 'failed' };

/** Delivery report: id, status, phoneNumber, networkCode, failureReason, retryCount. */
export function parseAfricasTalkingDelivery(f: Record<string, string>, now = new Date()): WebhookResult {
  const id = providerId(f.id);
  if (!id) return { ok: false, status: 400, reason: 'id is missing' };
  const raw = str(f.status, 32);
  if (!raw) return { ok: false, status: 400, reason: 'status is missing' };
  const status = AT_STATUS[raw.toLowerCase()];
  if (!status) return { ok: true, messages: [], statuses: [], ignored: 1 };
  const update: StatusUpdate = { channel: 'africastalking', providerId: id, status, at: now };
  if (status === 'failed') {
    const reason = str(f.failureReason, 100);
    update.error = { class: raw.toLowerCase() === 'expired' && !reason ? 'transient' : classifyAfricasTalkingFailure(reason), code: shortDetail(reason ?? raw, 32), detail: shortDetail(reason ? `${raw}: ${reason}` : raw) };
  }
  return { ok: true, messages: [], statuses: [update] };
}
