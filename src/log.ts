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
