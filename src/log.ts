/**
 * Structured JSON logs with pino. Personal data never reaches a log line: the
 * redaction list below masks the fields where it could travel, and `maskPhone`
 * is what code uses when it must mention an address at all.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Field names whose values are replaced before a line is written, at any depth we pass them. */
const REDACT = [
  'phone', 'number', 'address', 'to', 'from', 'text', 'body', 'name', 'email', 'password', 'token',
  'narrative', 'req.headers.cookie', 'req.headers.authorization', 'headers.cookie', 'headers.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ayni' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACT, ...REDACT.map((f) => `*.${f}`)], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** "+51987654321" → "+51*******21": enough to tell two numbers apart in a support call, not to dial. */
export function maskPhone(value: string): string {
  const digits = value.replace(/[^0-9+]/g, '');
  if (digits.length <= 4) return '****';
  return digits.slice(0, 3) + '*'.repeat(Math.max(0, digits.length - 5)) + digits.slice(-2);
}

/**
 * An error as it may be logged: its kind, code, the first line of its message (without the SQL
 * statement Knex puts in front) with quoted values, e-mail addresses and digit runs blanked, and its
 * stack frames. Database drivers put bound values
 * (numbers, message text) into their messages; this keeps them out of the logs.
 */
export function errorForLog(err: unknown): { type: string; code?: string | number; message?: string; stack?: string } {
  const e = err as { name?: unknown; code?: unknown; message?: unknown; stack?: unknown } | null;
  const out: { type: string; code?: string | number; message?: string; stack?: string } = {
    type: typeof e?.name === 'string' ? e.name : typeof err,
  };
  if (typeof e?.code === 'string' || typeof e?.code === 'number') out.code = e.code;
  if (typeof e?.message === 'string' && e.message) out.message = scrubMessage(e.message);
  if (typeof e?.stack === 'string') out.stack = e.stack.split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 12).join('\n');
  return out;
}

/** Knex puts the statement before the driver's message ("<sql> - <message>"): the message says what went wrong. */
const KNEX_STATEMENT = /^\s*(?:select|insert|update|delete|with|create|alter|drop|pragma)\b[\s\S]* - /i;

export function scrubMessage(message: string): string {
  return message
    .replace(KNEX_STATEMENT, '')
    .replace(/'(?:[^'\\]|\\.|'')*'/g, "'…'")
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\(([^()]*)\)=\(([^()]*)\)/g, '($1)=(…)')
    .replace(/[^\s@'"()]+@[^\s@'"()]+\.[A-Za-z]{2,}/g, '…@…')
    .replace(/\+?\d[\d\s-]{3,}\d/g, '#')
    .split('\n')[0]
    .slice(0, 300);
}
