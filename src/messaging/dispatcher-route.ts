/**
 * Which channel carries an outbox row, decided at send time (pure: no database, no clock of its own).
 *
 * The medium:
 *   - a row whose `channel` is set goes on that medium: 'whatsapp', or 'sms' / 'twilio' /
 *     'africastalking' (SMS; the last two also name the provider). A row with an `address_id`
 *     and no channel goes on that address's medium (a reply goes back where the message came from).
 *   - otherwise WhatsApp when the contact has a usable WhatsApp address, and SMS when not.
 *   - WhatsApp carries free-form content only inside the 24-hour window that the person's last
 *     inbound message on that address opened (`last_inbound_at`); outside it only an approved
 *     template (content type 'template'). When WhatsApp cannot carry the message it goes by SMS if
 *     the contact has an SMS address and SMS_FALLBACK is on (not for a row fixed to WhatsApp);
 *     otherwise it is skipped with 'window_closed'.
 *
 * The provider that carries it:
 *   - the simulator when it is the only channel configured, or when the address belongs to the
 *     simulator. An address belongs to the simulator when the last inbound message on it came
 *     through the simulator channel (the console's phone simulator stores its messages with
 *     channel 'simulator'); a row with channel 'simulator' is also sent there.
 *   - WhatsApp addresses: the WhatsApp Cloud API adapter.
 *   - SMS addresses: the provider the row names, else the provider the person last wrote through
 *     (Twilio or Africa's Talking), else the first SMS provider configured (Twilio, then Africa's
 *     Talking).
 * Addresses the provider reported as opted out are never used.
 */
import type { ChannelAdapter } from '../channels/types.js';
import type { ChannelName, Medium, OutboundContent } from './types.js';

export const WINDOW_MS = 24 * 3_600_000;

export interface RouteAddress {
  id: number;
  medium: Medium;
  kind: 'phone' | 'wa_user';
  address: string;
  optedOut: boolean;
  lastInboundAt: number | null;
  /** The channel of the last inbound message on this address, if any. */
  lastChannel: ChannelName | null;
}

export interface RouteInput {
  channel: string | null;
  addressId: number | null;
  content: OutboundContent;
  addresses: readonly RouteAddress[];
  now: number;
}

export interface Adapters {
  whatsapp?: ChannelAdapter;
  twilio?: ChannelAdapter;
  africastalking?: ChannelAdapter;
  /** The simulator's two faces (both named 'simulator'), by the medium they imitate. */
  simulator: { whatsapp?: ChannelAdapter; sms?: ChannelAdapter };
  /** True when no real provider is configured: everything goes to the simulator. */
  simulatorOnly: boolean;
  smsFallback: boolean;
}

export type Route = { ok: true; adapter: ChannelAdapter; address: RouteAddress } | { ok: false; reason: 'no_address' | 'opted_out' | 'no_channel' | 'window_closed' };

export function adaptersFrom(list: readonly ChannelAdapter[], smsFallback: boolean): Adapters {
  const by = new Map(list.filter((a) => a.name !== 'simulator').map((a) => [a.name, a]));
  const real = by.size > 0;
  return {
    whatsapp: by.get('whatsapp'),
    twilio: by.get('twilio'),
    africastalking: by.get('africastalking'),
    simulator: {
      whatsapp: list.find((a) => a.name === 'simulator' && a.medium === 'whatsapp'),
      sms: list.find((a) => a.name === 'simulator' && a.medium === 'sms'),
    },
    simulatorOnly: !real,
    smsFallback,
  };
}

function transport(a: Adapters, addr: RouteAddress, rowChannel: string | null): ChannelAdapter | undefined {
  if (a.simulatorOnly || addr.lastChannel === 'simulator' || rowChannel === 'simulator') return a.simulator[addr.medium];
  if (addr.medium === 'whatsapp') return a.whatsapp;
  if (rowChannel === 'twilio' && a.twilio) return a.twilio;
  if (rowChannel === 'africastalking' && a.africastalking) return a.africastalking;
  if (addr.lastChannel === 'twilio' && a.twilio) return a.twilio;
  if (addr.lastChannel === 'africastalking' && a.africastalking) return a.africastalking;
  return a.twilio ?? a.africastalking;
}

export function windowOpen(addr: RouteAddress, now: number): boolean {
  return addr.lastInboundAt !== null && now - addr.lastInboundAt < WINDOW_MS;
}

/** The usable address on a medium: the row's own address when it is on that medium, else the one the person used last. */
function pick(input: RouteInput, medium: Medium): RouteAddress | undefined {
  let best: RouteAddress | undefined;
  for (const addr of input.addresses) {
    if (addr.optedOut || addr.medium !== medium) continue;
    if (addr.id === input.addressId) return addr;
    if (!best || (addr.lastInboundAt ?? -1) > (best.lastInboundAt ?? -1)) best = addr;
  }
  return best;
}

export function chooseRoute(a: Adapters, input: RouteInput): Route {
  if (input.addresses.length === 0) return { ok: false, reason: 'no_address' };
  if (input.addresses.every((x) => x.optedOut)) return { ok: false, reason: 'opted_out' };
  const ch = input.channel;
  let want: Medium | null = ch === 'whatsapp' ? 'whatsapp' : ch === 'sms' || ch === 'twilio' || ch === 'africastalking' ? 'sms' : null;
  if (want === null && input.addressId !== null) want = input.addresses.find((x) => x.id === input.addressId)?.medium ?? null;

  const sms = () => {
    const s = pick(input, 'sms');
    const t = s && transport(a, s, ch);
    return s && t ? ({ ok: true, adapter: t, address: s } as const) : undefined;
  };
  if (want === 'sms') return sms() ?? { ok: false, reason: 'no_channel' };

  const w = pick(input, 'whatsapp');
  const wt = w && transport(a, w, ch);
  if (w && wt) {
    if (input.content.type === 'template' || windowOpen(w, input.now)) return { ok: true, adapter: wt, address: w };
    if (want === 'whatsapp' || !a.smsFallback) return { ok: false, reason: 'window_closed' };
    return sms() ?? { ok: false, reason: 'window_closed' };
  }
  if (want === 'whatsapp') return { ok: false, reason: w ? 'no_channel' : 'no_address' };
  return sms() ?? { ok: false, reason: 'no_channel' };
}

/** Whether an SMS route exists for a row that WhatsApp refused (131047): the SMS fallback. */
export function smsRoute(a: Adapters, input: RouteInput): Route {
  if (!a.smsFallback) return { ok: false, reason: 'window_closed' };
  return chooseRoute(a, { ...input, channel: 'sms', addressId: null });
}
