/**
 * The enabled channels of this process, built from the configuration: a provider whose
 * credentials are incomplete is off; the simulator is always on (a WhatsApp-like and an SMS-like
 * face sharing one store). Base URLs come from the settings, so tests point them at the fake
 * provider on loopback.
 *
 *   const channels = channelsFor(config);        // one registry per configuration object
 *   channels.forMedium('sms')                    // providers that carry SMS, else the simulator
 *   channels.get('whatsapp')                     // the WhatsApp Cloud API adapter, if configured
 *   channels.simulator.sms.sent('+51987654321')  // what the simulator "delivered"
 */
import type { Config } from '../config.js';
import type { ChannelName, Medium } from '../messaging/types.js';
import type { ChannelAdapter } from './types.js';
import type { HttpOptions } from './http.js';
import { WhatsAppChannel } from './whatsapp.js';
import { TwilioChannel } from './twilio.js';
import { AfricasTalkingChannel } from './africastalking.js';
import { SimulatorChannel, SimulatorStore } from './simulator.js';

export interface ChannelRegistry {
  /** Every enabled adapter: the configured providers, then the simulator's two faces. */
  readonly all: readonly ChannelAdapter[];
  readonly whatsapp?: WhatsAppChannel;
  readonly twilio?: TwilioChannel;
  readonly africastalking?: AfricasTalkingChannel;
  readonly simulator: { whatsapp: SimulatorChannel; sms: SimulatorChannel; store: SimulatorStore };
  /** The adapter by name; the simulator by name needs a medium (default sms). */
  get(name: ChannelName, medium?: Medium): ChannelAdapter | undefined;
  /** The providers that carry this medium, in preference order; the simulator when none is configured. */
  forMedium(medium: Medium): ChannelAdapter[];
  /** Names of the configured providers (not the simulator). */
  readonly providers: ('whatsapp' | 'twilio' | 'africastalking')[];
  close(): Promise<void>;
}

export interface BuildOptions {
  http?: HttpOptions;
  /** Overrides of each adapter's messages (SMS: segments) per second. */
  rates?: Partial<Record<ChannelName, number>>;
}

export function buildChannels(config: Config, opts: BuildOptions = {}): ChannelRegistry {
  // As many connections per provider as the dispatcher has requests going at once (opened only
  // when needed): a message that passed its last check goes onto a connection at once instead of
  // waiting in the pool's queue, where a STOP could land before it leaves.
  const http: HttpOptions = { connections: config.DISPATCH_CONCURRENCY, ...opts.http };
  const whatsapp = WhatsAppChannel.fromConfig(config, http, opts.rates?.whatsapp);
  const twilio = TwilioChannel.fromConfig(config, http, opts.rates?.twilio);
  const africastalking = AfricasTalkingChannel.fromConfig(config, http, opts.rates?.africastalking);
  const store = new SimulatorStore();
  const simRate = opts.rates?.simulator;
  const simulator = {
    whatsapp: new SimulatorChannel({ medium: 'whatsapp', store, ratePerSecond: simRate }),
    sms: new SimulatorChannel({ medium: 'sms', store, ratePerSecond: simRate }),
    store,
  };
  const providers = [whatsapp, twilio, africastalking].filter((a): a is NonNullable<typeof a> => a !== undefined);
  const all: ChannelAdapter[] = [...providers, simulator.whatsapp, simulator.sms];
  return {
    all,
    whatsapp,
    twilio,
    africastalking,
    simulator,
    providers: providers.map((p) => p.name),
    get(name, medium = 'sms') {
      if (name === 'simulator') return simulator[medium];
      return providers.find((p) => p.name === name);
    },
    forMedium(medium) {
      const own = providers.filter((p) => p.medium === medium);
      return own.length ? own : [simulator[medium]];
    },
    async close() {
      await Promise.all(providers.map((p) => p.close()));
    },
  };
}

const registries = new WeakMap<Config, ChannelRegistry>();

/** The registry for this configuration, built once (so every part of the process shares its connection pools). */
export function channelsFor(config: Config): ChannelRegistry {
  let r = registries.get(config);
  if (!r) {
    r = buildChannels(config);
    registries.set(config, r);
  }
  return r;
}
