/** Fixtures and signing for the channel tests. */
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../src/paths.js';
import twilio from 'twilio';

export const FIXTURES = join(ROOT, 'test', 'fixtures');

export function fixture(provider: 'whatsapp' | 'twilio' | 'africastalking', name: string): string {
  return readFileSync(join(FIXTURES, provider, name), 'utf8').replace(/\n$/, '');
}

export function fixtureNames(provider: 'whatsapp' | 'twilio' | 'africastalking'): string[] {
  return readdirSync(join(FIXTURES, provider)).sort();
}

export function metaSignature(secret: string, raw: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(raw, 'utf8').digest('hex');
}

/** Form parameters as twilio's helpers take them: repeated names become arrays. */
export function twilioParams(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** Signs as Twilio does, with the official package (the oracle for our verifier). */
export function signTwilio(authToken: string, url: string, raw: string): string {
  return twilio.getExpectedTwilioSignature(authToken, url, twilioParams(raw) as Record<string, string>);
}
