/**
 * The words of the complaints domain: categories (DRC's CFM coding, with the four sensitive ones),
 * the status workflow and its allowed moves, priorities and their service levels, reference codes.
 */
import { randomInt } from 'node:crypto';
import type { Config } from '../config.js';

export const CATEGORIES = [
  'appreciation', // thanks, praise
  'question', // request for information
  'assistance', // request for assistance
  'programme', // non-sensitive programme complaint
  'suggestion',
  'rumour', // rumour or misinformation heard
  'sea', // sexual exploitation and abuse (PSEA)
  'fraud', // fraud, or asked to pay / give something for assistance
  'misconduct', // staff misconduct (code of conduct)
  'safety', // threat to someone's safety
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Categories that make a case sensitive: focal points only, narrative sealed. */
export const SENSITIVE_CATEGORIES: ReadonlySet<Category> = new Set(['sea', 'fraud', 'misconduct', 'safety']);
export const isSensitiveCategory = (c: string): boolean => SENSITIVE_CATEGORIES.has(c as Category);

export const STATUSES = ['new', 'acknowledged', 'in_progress', 'referred', 'resolved', 'closed'] as const;
export type Status = (typeof STATUSES)[number];
/** Cases still being handled (not resolved or closed). */
export const OPEN_STATUSES: readonly Status[] = ['new', 'acknowledged', 'in_progress', 'referred'];

/**
 * Allowed moves. The main line is new → acknowledged → in progress → referred → resolved → closed;
 * a case may skip ahead, go back to "in progress" from referred or resolved (reopened), and a new or
 * acknowledged case may be closed without resolution (duplicate, spam) with a note saying why.
 */
export const TRANSITIONS: Record<Status, readonly Status[]> = {
  new: ['acknowledged', 'in_progress', 'referred', 'resolved', 'closed'],
  acknowledged: ['in_progress', 'referred', 'resolved', 'closed'],
  in_progress: ['referred', 'resolved'],
  referred: ['in_progress', 'resolved'],
  resolved: ['closed', 'in_progress'],
  closed: [],
};

export const PRIORITIES = ['high', 'medium', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** The priority a new case gets unless someone sets another. */
export const DEFAULT_PRIORITY: Record<Category, Priority> = {
  appreciation: 'low',
  question: 'low',
  suggestion: 'low',
  rumour: 'medium',
  assistance: 'medium',
  programme: 'medium',
  sea: 'high',
  fraud: 'high',
  misconduct: 'high',
  safety: 'high',
};

export const SOURCES = ['whatsapp', 'sms', 'web', 'phone', 'in_person', 'staff', 'pdm'] as const;
export type Source = (typeof SOURCES)[number];

export interface SlaHours {
  high: number;
  medium: number;
  low: number;
}
export const DEFAULT_SLA: SlaHours = { high: 24, medium: 24 * 7, low: 24 * 30 };

export function slaFromConfig(c: Pick<Config, 'COMPLAINTS_SLA_HIGH_HOURS' | 'COMPLAINTS_SLA_MEDIUM_HOURS' | 'COMPLAINTS_SLA_LOW_HOURS'>): SlaHours {
  return { high: c.COMPLAINTS_SLA_HIGH_HOURS, medium: c.COMPLAINTS_SLA_MEDIUM_HOURS, low: c.COMPLAINTS_SLA_LOW_HOURS };
}

let processSla: SlaHours = DEFAULT_SLA;
/** Registers the SLA settings for code paths that get no configuration (openComplaint from other domains). */
export function configureSla(sla: SlaHours): void {
  processSla = sla;
}
export const currentSla = (): SlaHours => processSla;

export function dueAt(receivedAt: Date, priority: Priority, sla: SlaHours = processSla): Date {
  return new Date(receivedAt.getTime() + sla[priority] * 3_600_000);
}

/** SLA state of a case at `now`: met/missed once resolved, otherwise on time, due soon (last quarter) or overdue. */
export type SlaState = 'on_time' | 'due_soon' | 'overdue' | 'met' | 'missed';
export function slaState(c: { status: string; receivedAt: Date; dueAt: Date; resolvedAt: Date | null }, now: Date): SlaState {
  if (c.status === 'resolved' || c.status === 'closed') {
    const done = c.resolvedAt ?? now;
    return done.getTime() <= c.dueAt.getTime() ? 'met' : 'missed';
  }
  if (now.getTime() > c.dueAt.getTime()) return 'overdue';
  const span = c.dueAt.getTime() - c.receivedAt.getTime();
  return c.dueAt.getTime() - now.getTime() <= span / 4 ? 'due_soon' : 'on_time';
}

// ------------------------------------------------------------------------------ reference codes

/** Neither 0 nor O, 1 nor I, 2 nor Z, 5 nor S, 8 nor B, and no 6 (read as G): what is read aloud or copied by hand is what was meant. */
export const CODE_ALPHABET = 'ACDEFGHJKLMNPQRTUVWXY3479';
export const CODE_LENGTH = 6;
const CODE_RE = new RegExp(`^[${CODE_ALPHABET}]{${CODE_LENGTH}}$`);

export function newCode(): string {
  let s = '';
  for (let i = 0; i < CODE_LENGTH; i++) s += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return s;
}

/** " k7q-x3m " → "K7QX3M"; null when it cannot be a code. */
export function normaliseCode(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const s = raw.toUpperCase().replace(/[\s\-_.#]+/g, '');
  return CODE_RE.test(s) ? s : null;
}
