/**
 * The simulator: an in-process channel for the console's phone simulator, for tests, and for a
 * newcomer trying Ayni without a provider account. It is always on.
 *
 * `send` records the message (with a generated provider id) where it can be read back per address
 * (`sent(address)`, newest last; each address keeps its last 200, and the simulator its last
 * 10,000 addresses). `inbound(...)` builds the ParsedInbound a real webhook would have produced, for
 * the console or a test to hand to the inbound pipeline. It behaves like WhatsApp (buttons and
 * lists kept as such) or like SMS (everything rendered as text, counted in segments), by medium.
 * Messages are held in this process only; the outbox rows remain the record across processes.
 */
import { randomUUID } from 'node:crypto';
import type { Medium, OutboundContent, ParsedInbound } from '../messaging/types.js';
import type { ChannelAdapter, ProviderError, SendRequest, SendResult, StatusUpdate, WebhookResult } from './types.js';
import { measureSms, renderSms } from './sms.js';
import { validateWhatsAppContent } from './whatsapp.js';

export interface SimulatedMessage {
  providerId: string;
  medium: Medium;
  to: string;
  content: OutboundContent;
  /** What the phone shows: the text of a WhatsApp message, or the whole SMS as rendered. */
  text: string;
  segments?: number;
  callbackData?: string;
  at: Date;
}

const PER_ADDRESS = 200;
const MAX_ADDRESSES = 10_000;

/** Sent messages per (medium, address), shared by the simulator's WhatsApp-like and SMS-like faces. */
export class SimulatorStore {
  private readonly byAddress = new Map<string, SimulatedMessage[]>();
  private readonly listeners = new Set<(m: SimulatedMessage) => void>();
  total = 0;

  add(m: SimulatedMessage): void {
    const key = `${m.medium}:${m.to}`;
    let list = this.byAddress.get(key);
    if (list) this.byAddress.delete(key); // re-insert: most recently used last
    else list = [];
    list.push(m);
    if (list.length > PER_ADDRESS) list.splice(0, list.length - PER_ADDRESS);
    this.byAddress.set(key, list);
    if (this.byAddress.size > MAX_ADDRESSES) this.byAddress.delete(this.byAddress.keys().next().value!);
    this.total++;
    for (const l of this.listeners) l(m);
  }

  sent(medium: Medium, address: string): SimulatedMessage[] {
    return [...(this.byAddress.get(`${medium}:${address}`) ?? [])];
  }

  /** Calls `listener` for every message sent from now on; returns a function that stops it. */
  onSend(listener: (m: SimulatedMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  clear(): void {
    this.byAddress.clear();
    this.total = 0;
  }
}

export interface SimulatorOptions {
  medium: Medium;
  store?: SimulatorStore;
  /** Messages (or SMS segments) per second; default 1,000. */
  ratePerSecond?: number;
}

export interface SimulatedInbound {
  from: string;
  fromKind?: 'phone' | 'wa_user';
  text?: string | null;
  /** A tapped button or list row: its id (and `text`, its title). */
  buttonId?: string;
  listRowId?: string;
  kind?: ParsedInbound['kind'];
  profileName?: string;
  providerId?: string;
  at?: Date;
}

export class SimulatorChannel implements ChannelAdapter {
  readonly name = 'simulator' as const;
  readonly medium: Medium;
  readonly ratePerSecond: number;
  readonly store: SimulatorStore;
  private faults: { to?: string; left: number; error: ProviderError }[] = [];

  constructor(opts: SimulatorOptions) {
    this.medium = opts.medium;
    this.ratePerSecond = opts.ratePerSecond ?? 1000;
    this.store = opts.store ?? new SimulatorStore();
  }

  async send(req: SendRequest): Promise<SendResult> {
    const fault = this.faults.find((f) => f.left > 0 && (!f.to || f.to === req.to));
    if (fault) {
      fault.left--;
      return { ok: false, error: fault.error };
    }
    let text: string;
    let segments: number | undefined;
    if (this.medium === 'whatsapp') {
      const problems = validateWhatsAppContent(req.content);
      if (problems.length) return { ok: false, error: { class: 'permanent', code: 'invalid_content', detail: problems.join('; ') } };
      text = req.content.text;
    } else {
      if (req.toKind !== 'phone') return { ok: false, error: { class: 'permanent', code: 'invalid_content', detail: 'an SMS needs a phone number' } };
      text = renderSms(req.content, req.language);
      segments = measureSms(text).segments;
    }
    const providerId = `sim-${randomUUID()}`;
    const m: SimulatedMessage = { providerId, medium: this.medium, to: req.to, content: req.content, text, at: new Date() };
    if (segments !== undefined) m.segments = segments;
    if (req.callbackData !== undefined) m.callbackData = req.callbackData;
    this.store.add(m);
    return segments !== undefined ? { ok: true, providerId, segments } : { ok: true, providerId };
  }

  /** Messages sent to this address on this medium, oldest first. */
  sent(address: string): SimulatedMessage[] {
    return this.store.sent(this.medium, address);
  }

  /** The message a person "typed" or "tapped" on the simulated phone, ready for storeInbound/receive. */
  inbound(input: SimulatedInbound): ParsedInbound {
    const kind = input.kind ?? (input.buttonId !== undefined ? 'button' : input.listRowId !== undefined ? 'list' : 'text');
    const m: ParsedInbound = {
      channel: 'simulator',
      medium: this.medium,
      providerId: input.providerId ?? `sim-in-${randomUUID()}`,
      from: input.from,
      fromKind: input.fromKind ?? 'phone',
      kind,
      text: input.text ?? null,
      payload: input.buttonId ?? input.listRowId ?? null,
      receivedAt: input.at ?? new Date(),
    };
    if (input.profileName) m.profileName = input.profileName;
    return m;
  }

  /** A delivery status as a provider would report it, e.g. when the simulated phone "reads" a message. */
  report(providerId: string, status: StatusUpdate['status'], error?: ProviderError): StatusUpdate {
    const u: StatusUpdate = { channel: 'simulator', providerId, status, at: new Date() };
    if (error) u.error = error;
    return u;
  }

  /** Makes the next `times` sends (to `to`, or to anyone) fail with `error`: for tests of error handling. */
  failNext(error: ProviderError, opts: { times?: number; to?: string } = {}): void {
    this.faults.push({ error, left: opts.times ?? 1, to: opts.to });
  }

  clearFaults(): void {
    this.faults = [];
  }

  parseWebhook(): WebhookResult {
    return { ok: false, status: 400, reason: 'the simulator has no webhook; use inbound()' };
  }
}
