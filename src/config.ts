/**
 * Every setting Ayni reads, parsed once from the environment with one zod schema.
 * Nothing else in the code base reads process.env: take a `Config` instead.
 */
import { z } from 'zod';

const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const s = v.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const url = (fallback?: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const value = v === undefined || v === '' ? fallback : v.trim();
      if (value === undefined) return undefined;
      try {
        const u = new URL(value);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
        return value.replace(/\/+$/, '');
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
        return z.NEVER;
      }
    });

export type DatabaseSetting =
  | { kind: 'sqlite'; file: string }
  | { kind: 'postgresql'; url: string; dbName: string };

/** Parses DATABASE_URL: `sqlite:PATH`, `file:PATH`, `postgres://…` or `postgresql://…`. */
export function parseDatabaseUrl(value: string): DatabaseSetting | undefined {
  const v = value.trim();
  const sqlite = /^(?:sqlite|file):(?:\/\/)?(.+)$/i.exec(v);
  if (sqlite) return { kind: 'sqlite', file: sqlite[1] };
  if (/^postgres(?:ql)?:\/\//i.test(v)) {
    try {
      const u = new URL(v);
      const dbName = decodeURIComponent(u.pathname.replace(/^\//, ''));
      if (!u.hostname || !dbName) return undefined;
      return { kind: 'postgresql', url: v, dbName };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const languageCode = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const s = (v ?? '').trim() || 'es';
    if (!/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(s)) {
      ctx.addIssue({ code: 'custom', message: 'must be a BCP 47 language code such as es or en' });
      return z.NEVER;
    }
    return s;
  });

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).optional().default('development'),
    HOST: z.string().optional().default('0.0.0.0'),
    PORT: int(3000, 1, 65535),
    PUBLIC_URL: url(),
    DATABASE_URL: z
      .string()
      .optional()
      .transform((v, ctx) => {
        const parsed = parseDatabaseUrl(v === undefined || v === '' ? 'sqlite:./data/ayni.sqlite' : v);
        if (!parsed) {
          ctx.addIssue({
            code: 'custom',
            message: 'must be sqlite:PATH (for example sqlite:./data/ayni.sqlite) or postgres://USER@HOST:PORT/DATABASE',
          });
          return z.NEVER;
        }
        return parsed;
      }),
    DATABASE_POOL_SIZE: int(10, 1, 200),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
    BODY_LIMIT_KB: int(1024, 1, 100 * 1024),
    SESSION_TTL_HOURS: int(12, 1, 24 * 30),
    COOKIE_SECURE: z.enum(['auto', 'true', 'false']).optional().default('auto'),
    LOGIN_MAX_FAILURES: int(5, 1, 1000),
    LOGIN_LOCK_MINUTES: int(15, 1, 24 * 60),
    ADMIN_EMAIL: z.string().optional().default('admin@ayni.local').pipe(z.email({ message: 'must be an e-mail address' })),
    ADMIN_PASSWORD: optionalText.pipe(
      z.string().min(12, { message: 'must be at least 12 characters' }).optional(),
    ),
    RUN_SCHEDULER: bool(true),
    // The outbox dispatcher (src/messaging/dispatcher.ts): one loop per process.
    RUN_DISPATCHER: bool(true),
    DISPATCH_CONCURRENCY: int(512, 1, 4096), // messages between their last check and the provider's answer, at once
    DISPATCH_BATCH_SIZE: int(500, 1, 5000), // outbox rows claimed per query
    DISPATCH_MAX_ATTEMPTS: int(5, 1, 50), // transient errors are retried until this many attempts
    DISPATCH_CLAIM_TIMEOUT_SECONDS: int(60, 2, 3600), // a claim not renewed for this long belonged to a dead process
    SMS_FALLBACK: bool(true), // send by SMS when WhatsApp cannot carry a message (outside the 24-hour window)
    WHATSAPP_RATE_PER_SECOND: int(80, 1, 100_000),
    TWILIO_RATE_PER_SECOND: int(10, 1, 100_000), // segments per second
    AFRICASTALKING_RATE_PER_SECOND: int(10, 1, 100_000), // segments per second
    // Broadcasts (src/broadcasts/): the preview's cost and time estimates, and default quiet hours.
    SMS_PRICE_PER_SEGMENT: z.string().optional().transform((v, ctx) => {
      const n = v === undefined || v.trim() === '' ? 0 : Number(v);
      if (!Number.isFinite(n) || n < 0) { ctx.addIssue({ code: 'custom', message: 'must be a price such as 0.0075' }); return z.NEVER; }
      return n;
    }),
    /** Per template message (business-initiated, outside the 24-hour window); free-form messages inside it are free. */
    WHATSAPP_PRICE_PER_MESSAGE: z.string().optional().transform((v, ctx) => {
      const n = v === undefined || v.trim() === '' ? 0 : Number(v);
      if (!Number.isFinite(n) || n < 0) { ctx.addIssue({ code: 'custom', message: 'must be a price such as 0.0125' }); return z.NEVER; }
      return n;
    }),
    PRICE_CURRENCY: z.string().optional().transform((v) => (v ?? '').trim().toUpperCase() || 'USD').pipe(z.string().regex(/^[A-Z]{3}$/, { message: 'must be a three-letter currency code such as USD or PEN' })),
    /** Unique people a WhatsApp number may start conversations with per 24 hours: 250, 2000, 10000, 100000 or unlimited. */
    WHATSAPP_MESSAGING_TIER: z.string().optional().transform((v, ctx) => {
      const s = (v ?? '').trim().toLowerCase().replace(/[_,]/g, '');
      if (s === '') return 250;
      if (s === 'unlimited') return Infinity;
      const n = Number(s.replace(/k$/, '000'));
      if (![250, 2000, 10000, 100000].includes(n)) { ctx.addIssue({ code: 'custom', message: 'must be 250, 2000, 10000, 100000 or unlimited' }); return z.NEVER; }
      return n;
    }),
    /** Default quiet hours for broadcasts, in each contact's own time zone: "20:00-08:00", or "off". */
    QUIET_HOURS: z.string().optional().transform((v, ctx) => {
      const s = (v ?? '').trim().toLowerCase();
      if (s === '') return { start: '20:00', end: '08:00' } as { start: string; end: string } | null;
      if (s === 'off' || s === 'none') return null;
      const m = /^([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)$/.exec(s);
      if (!m || `${m[1]}:${m[2]}` === `${m[3]}:${m[4]}`) { ctx.addIssue({ code: 'custom', message: 'must be HH:MM-HH:MM such as 20:00-08:00, or off' }); return z.NEVER; }
      return { start: `${m[1]}:${m[2]}`, end: `${m[3]}:${m[4]}` } as { start: string; end: string } | null;
    }),
    DEFAULT_LANGUAGE: languageCode,
    DEFAULT_COUNTRY: z
      .string()
      .optional()
      .default('PE')
      .transform((v) => v.trim().toUpperCase())
      .pipe(z.string().regex(/^[A-Z]{2}$/, { message: 'must be a two-letter ISO country code such as PE' })),
    DEFAULT_TIMEZONE: z
      .string()
      .optional()
      .default('America/Lima')
      .refine(isTimeZone, { message: 'must be an IANA time zone such as America/Lima' }),

    /** Who the messages are from, as people are told in consent prompts and HELP replies. */
    PROGRAMME_NAME: z.string().optional().transform((v) => (v === undefined || v.trim() === '' ? 'Ayni' : v.trim())).pipe(z.string().max(60, { message: 'must be at most 60 characters' })),
    /** Secret key for keyed hashes of erased addresses (tombstones). Required in production; never change it. */
    PSEUDONYM_KEY: optionalText.pipe(z.string().min(32, { message: 'must be at least 32 characters' }).optional()),
    /** Days before the text of conversations is erased (0 = never). */
    RETENTION_MESSAGE_DAYS: int(1, 0, 36500),
    /** Days before a contact with no active consent and no open case loses number, name and fields (0 = never). */
    RETENTION_UNCONSENTED_DAYS: int(7, 0, 36500),

    /** 32 random bytes, base64 (`ayni complaints key`): seals sensitive complaint narratives and mental-health notes (AES-256-GCM). Required in production. */
    COMPLAINTS_ENCRYPTION_KEY: optionalText.pipe(
      z.string().refine((v) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === 32, { message: 'must be 32 bytes in base64 (for example from `openssl rand -base64 32`)' }).optional(),
    ),
    /** Service levels: hours from receipt to resolution, by priority. */
    COMPLAINTS_SLA_HIGH_HOURS: int(24, 1, 24 * 365),
    COMPLAINTS_SLA_MEDIUM_HOURS: int(24 * 7, 1, 24 * 365),
    COMPLAINTS_SLA_LOW_HOURS: int(24 * 30, 1, 24 * 365),
    /** Submissions of the public feedback form per client address per hour. */
    COMPLAINTS_FORM_MAX_PER_HOUR: int(5, 1, 10_000),
    /** Emergency numbers sent when psychosocial triage is red, e.g. "Emergencias 105 · Salud mental 113 (opcion 5)". */
    PSS_EMERGENCY_NUMBERS: optionalText.pipe(z.string().max(300, { message: 'must be at most 300 characters' }).optional()),

    /** Cash PDM: days after a distribution when its post-distribution monitoring starts. */
    CASH_PDM_DAYS: int(28, 0, 365),
    /** Cash PDM sample: confidence level and margin of error, in percent (Cochran, p = 0.5, finite population correction). */
    CASH_PDM_CONFIDENCE: z.string().optional().transform((v, ctx) => {
      const n = v === undefined || v.trim() === '' ? 95 : Number(v);
      if (!Number.isFinite(n) || n < 50 || n >= 100) { ctx.addIssue({ code: 'custom', message: 'must be a percentage from 50 to 99.9, such as 95' }); return z.NEVER; }
      return n;
    }),
    CASH_PDM_MARGIN: z.string().optional().transform((v, ctx) => {
      const n = v === undefined || v.trim() === '' ? 5 : Number(v);
      if (!Number.isFinite(n) || n < 0.5 || n > 50) { ctx.addIssue({ code: 'custom', message: 'must be a percentage from 0.5 to 50, such as 5' }); return z.NEVER; }
      return n;
    }),

    WHATSAPP_API_URL: url('https://graph.facebook.com/v23.0'),
    WHATSAPP_ACCESS_TOKEN: optionalText,
    WHATSAPP_PHONE_NUMBER_ID: optionalText,
    WHATSAPP_APP_SECRET: optionalText,
    WHATSAPP_VERIFY_TOKEN: optionalText,

    TWILIO_API_URL: url('https://api.twilio.com'),
    TWILIO_ACCOUNT_SID: optionalText,
    TWILIO_AUTH_TOKEN: optionalText,
    TWILIO_FROM: optionalText,
    TWILIO_MESSAGING_SERVICE_SID: optionalText,

    AFRICASTALKING_API_URL: url('https://api.africastalking.com'),
    AFRICASTALKING_USERNAME: optionalText,
    AFRICASTALKING_API_KEY: optionalText,
    AFRICASTALKING_FROM: optionalText,
    AFRICASTALKING_WEBHOOK_SECRET: optionalText,
  })
  .superRefine((c, ctx) => {
    const groups: [string, string[]][] = [
      ['WHATSAPP', ['WHATSAPP_ACCESS_TOKEN', 'WHATSAPP_PHONE_NUMBER_ID', 'WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN']],
      ['TWILIO', ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN']],
      ['AFRICASTALKING', ['AFRICASTALKING_USERNAME', 'AFRICASTALKING_API_KEY', 'AFRICASTALKING_WEBHOOK_SECRET']],
    ];
    const rec = c as unknown as Record<string, unknown>;
    for (const [, names] of groups) {
      const set = names.filter((n) => rec[n] !== undefined);
      if (set.length > 0 && set.length < names.length) {
        for (const n of names.filter((n) => rec[n] === undefined)) {
          ctx.addIssue({ code: 'custom', path: [n], message: `is required when ${set.join(', ')} is set` });
        }
      }
    }
    if (c.TWILIO_ACCOUNT_SID && !c.TWILIO_FROM && !c.TWILIO_MESSAGING_SERVICE_SID) {
      ctx.addIssue({ code: 'custom', path: ['TWILIO_FROM'], message: 'or TWILIO_MESSAGING_SERVICE_SID is required when TWILIO_ACCOUNT_SID is set' });
    }
    if (c.NODE_ENV === 'production' && !c.PSEUDONYM_KEY) {
      ctx.addIssue({ code: 'custom', path: ['PSEUDONYM_KEY'], message: 'is required in production: a random secret of at least 32 characters (for example from `openssl rand -hex 32`), kept outside the database and never changed' });
    }
    if (c.NODE_ENV === 'production' && !c.COMPLAINTS_ENCRYPTION_KEY) {
      ctx.addIssue({ code: 'custom', path: ['COMPLAINTS_ENCRYPTION_KEY'], message: 'is required in production: 32 random bytes in base64 (for example from `openssl rand -base64 32` or `ayni complaints key`), kept outside the database; without it sensitive complaints cannot be read' });
    }
    if (c.AFRICASTALKING_WEBHOOK_SECRET && c.AFRICASTALKING_WEBHOOK_SECRET.length < 16) {
      ctx.addIssue({ code: 'custom', path: ['AFRICASTALKING_WEBHOOK_SECRET'], message: 'must be at least 16 characters' });
    }
  });

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

type Parsed = z.output<typeof schema>;

export interface Config extends Omit<Parsed, 'PUBLIC_URL' | 'COOKIE_SECURE'> {
  PUBLIC_URL: string;
  COOKIE_SECURE: boolean;
  /** Names of the channels whose credentials are complete. The simulator is always present. */
  channels: { whatsapp: boolean; twilio: boolean; africastalking: boolean };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Every variable the schema knows, for the README table and for `ayni config`. */
export const settingNames = Object.keys(schema.shape);

/** Parses the given environment (default: process.env). Throws ConfigError listing one line per problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'configuration');
      const message = issue.code === 'invalid_value' ? `must be one of ${issue.values.join(', ')}` : issue.message;
      return `${name}: ${message}`;
    });
    throw new ConfigError([...new Set(problems)]);
  }
  const c = result.data;
  const publicUrl = c.PUBLIC_URL ?? `http://localhost:${c.PORT}`;
  return {
    ...c,
    PUBLIC_URL: publicUrl,
    COOKIE_SECURE: c.COOKIE_SECURE === 'auto' ? publicUrl.startsWith('https:') : c.COOKIE_SECURE === 'true',
    channels: {
      whatsapp: Boolean(c.WHATSAPP_ACCESS_TOKEN),
      twilio: Boolean(c.TWILIO_ACCOUNT_SID),
      africastalking: Boolean(c.AFRICASTALKING_API_KEY),
    },
  };
}
