/**
 * Reading what people type into typed answers: option numbers or labels (case- and
 * accent-insensitive), several options ("1 3", "1,3", "1 y 3", "1 and 3", "1 e 3", "1 et 3"),
 * whole and decimal numbers ("25", "25 años", "1.500", "2,5"), and dates ("2026-11-22",
 * "22/11/2026", "22 de noviembre de 2026").
 */
import { normaliseAnswer } from './definition.js';

export type ParseError =
  | { code: 'not_understood' }
  | { code: 'choose_number'; from: number; to: number }
  | { code: 'one_only' }
  | { code: 'integer' }
  | { code: 'decimal' }
  | { code: 'date' }
  | { code: 'text' };

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: ParseError };

export interface MatchChoice {
  key: string;
  /** Normalised labels (every language) and the name. */
  match: string[];
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: ParseError): Parsed<T> => ({ ok: false, error });

/** One option from a number (1-based), a label or a name; a unique label prefix of 3+ letters also counts. */
export function parseOne(text: string, choices: readonly MatchChoice[]): Parsed<string> {
  const n = normaliseAnswer(text);
  if (n === '') return fail({ code: 'not_understood' });
  const exact = matchLabel(n, choices);
  if (exact) return ok(exact);
  // "2", "opcion 2", "#2"
  let m = /^(?:\p{L}+ )?(\d{1,3})$/u.exec(n);
  if (m) {
    const i = Number(m[1]);
    return i >= 1 && i <= choices.length ? ok(choices[i - 1].key) : fail({ code: 'choose_number', from: 1, to: choices.length });
  }
  // "2 no", "2 porque…": the number leads; a label after it must agree with it. "1 3" is two answers.
  m = /^(\d{1,3}) (.+)$/u.exec(n);
  if (m) {
    if (/^\d+( \d+)*$/.test(m[2])) return fail({ code: 'one_only' });
    const i = Number(m[1]);
    if (i < 1 || i > choices.length) return fail({ code: 'choose_number', from: 1, to: choices.length });
    const byLabel = matchLabel(m[2], choices);
    if (byLabel !== null && byLabel !== choices[i - 1].key) return fail({ code: 'not_understood' });
    return ok(choices[i - 1].key);
  }
  const prefix = prefixMatch(n, choices);
  if (prefix) return ok(prefix);
  // Several labels for a single-choice question.
  if (choices.filter((c) => c.match.some((x) => x.length > 2 && ` ${n} `.includes(` ${x} `))).length > 1) return fail({ code: 'one_only' });
  return fail({ code: 'not_understood' });
}

function matchLabel(n: string, choices: readonly MatchChoice[]): string | null {
  for (const c of choices) if (c.match.includes(n)) return c.key;
  return null;
}

function prefixMatch(n: string, choices: readonly MatchChoice[]): string | null {
  if (n.length < 3 || /^\d/.test(n)) return null;
  const hits = choices.filter((c) => c.match.some((m) => m.startsWith(n + ' ') || (m.startsWith(n) && n.length >= 4)));
  return hits.length === 1 ? hits[0].key : null;
}

const SEPARATORS = /\s*(?:[,;/&+]|\s(?:y|and|e|et|o|or|ou)\s)\s*/iu;

/** Several options: "1 3", "1,3", "1 y 3", "Salud, trabajo", "13" (for up to 9 options). */
export function parseMany(text: string, choices: readonly MatchChoice[]): Parsed<string[]> {
  const whole = normaliseAnswer(text);
  if (whole === '') return fail({ code: 'not_understood' });
  const single = matchLabel(whole, choices);
  if (single) return ok([single]);
  const keys: string[] = [];
  function addKey(k: string) {
    if (!keys.includes(k)) keys.push(k);
  }
  const parts = ` ${text.toLowerCase()} `.split(SEPARATORS).map(normaliseAnswer).filter(Boolean);
  for (const part of parts) {
    const byLabel = matchLabel(part, choices);
    if (byLabel) {
      addKey(byLabel);
      continue;
    }
    if (/^\d+(\s+\d+)*$/.test(part)) {
      for (const token of part.split(/\s+/)) {
        const i = Number(token);
        if (i >= 1 && i <= choices.length) addKey(choices[i - 1].key);
        else if (choices.length <= 9 && token.length > 1 && [...token].every((d) => Number(d) >= 1 && Number(d) <= choices.length)) {
          for (const d of token) addKey(choices[Number(d) - 1].key);
        } else return fail({ code: 'choose_number', from: 1, to: choices.length });
      }
      continue;
    }
    const prefix = prefixMatch(part, choices);
    if (prefix) {
      addKey(prefix);
      continue;
    }
    // A label with the word "y"/"and" inside it ("Salud y bienestar") was split: try the parts rejoined.
    return fail({ code: 'not_understood' });
  }
  return keys.length ? ok(keys) : fail({ code: 'not_understood' });
}

/** All number tokens in a text, with "1 000" joined. */
function numberTokens(text: string): string[] {
  const joined = text.replace(/(\d) (?=\d{3}\b)/g, '$1');
  return joined.match(/[-+]?\d+(?:[.,]\d+)*/g) ?? [];
}

export function parseInteger(text: string): Parsed<number> {
  const tokens = numberTokens(text);
  if (tokens.length !== 1) return fail({ code: 'integer' });
  let t = tokens[0];
  const sign = t.startsWith('-') ? -1 : 1;
  t = t.replace(/^[-+]/, '');
  if (/^\d+$/.test(t)) return finite(sign * Number(t), 'integer');
  // Thousands grouped with one kind of separator: 1.500, 12,000, 1.000.000
  if (/^\d{1,3}([.,])\d{3}(\1\d{3})*$/.test(t)) return finite(sign * Number(t.replace(/[.,]/g, '')), 'integer');
  return fail({ code: 'integer' });
}

export function parseDecimal(text: string): Parsed<number> {
  const tokens = numberTokens(text);
  if (tokens.length !== 1) return fail({ code: 'decimal' });
  let t = tokens[0];
  const sign = t.startsWith('-') ? -1 : 1;
  t = t.replace(/^[-+]/, '');
  if (/^\d+$/.test(t)) return finite(sign * Number(t), 'decimal');
  const dots = (t.match(/\./g) ?? []).length;
  const commas = (t.match(/,/g) ?? []).length;
  if (dots && commas) {
    // The last separator is the decimal one: 1.234,5 or 1,234.5
    const dec = t.lastIndexOf('.') > t.lastIndexOf(',') ? '.' : ',';
    const thousands = dec === '.' ? ',' : '.';
    const [int, frac] = [t.slice(0, t.lastIndexOf(dec)), t.slice(t.lastIndexOf(dec) + 1)];
    if (!new RegExp(`^\\d{1,3}(\\${thousands}\\d{3})*$`).test(int)) return fail({ code: 'decimal' });
    return finite(sign * Number(`${int.split(thousands).join('')}.${frac}`), 'decimal');
  }
  const sep = dots ? '.' : ',';
  const count = dots || commas;
  if (count === 1) {
    const [int, frac] = t.split(sep);
    // "1.500" is fifteen hundred as written in Latin America; "1.5" and "2,75" are decimals.
    if (frac.length === 3 && int.length <= 3 && int !== '0') return finite(sign * Number(int + frac), 'decimal');
    return finite(sign * Number(`${int}.${frac}`), 'decimal');
  }
  if (/^\d{1,3}([.,])\d{3}(\1\d{3})*$/.test(t)) return finite(sign * Number(t.replace(/[.,]/g, '')), 'decimal');
  return fail({ code: 'decimal' });
}

function finite(n: number, code: 'integer' | 'decimal'): Parsed<number> {
  return Number.isFinite(n) && Math.abs(n) <= 1e15 ? ok(n) : fail({ code });
}

const MONTHS: Record<string, number> = {};
(
  [
    ['january jan enero ene janeiro janvier janv', 1],
    ['february feb febrero fevereiro fev fevrier fevr', 2],
    ['march mar marzo marco mars', 3],
    ['april apr abril abr avril avr', 4],
    ['may mayo maio mai', 5],
    ['june jun junio junho juin', 6],
    ['july jul julio julho juillet juil', 7],
    ['august aug agosto ago aout', 8],
    ['september sep sept septiembre setiembre set setembro septembre', 9],
    ['october oct octubre outubro out octobre', 10],
    ['november nov noviembre novembro novembre', 11],
    ['december dec diciembre dic dezembro dez decembre', 12],
  ] as const
).forEach(([names, m]) => names.split(' ').forEach((n) => (MONTHS[n] = m)));

function iso(y: number, m: number, d: number): string | null {
  if (m < 1 || m > 12 || d < 1 || d > 31 || y < 1900 || y > 2200) return null;
  const t = new Date(Date.UTC(y, m - 1, d));
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== m - 1 || t.getUTCDate() !== d) return null;
  return t.toISOString().slice(0, 10);
}

function fullYear(y: string, today: string): number {
  if (y.length === 4) return Number(y);
  const current = Number(today.slice(0, 4));
  const candidate = 2000 + Number(y);
  return candidate <= current + 10 ? candidate : 1900 + Number(y);
}

/** A date as 'YYYY-MM-DD'. Numeric dates are day first (22/11/2026), as written in Latin America and Europe. */
export function parseDate(text: string, today: string): Parsed<string> {
  const s = text.trim();
  let m = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$/.exec(s);
  if (m) return orFail(iso(Number(m[1]), Number(m[2]), Number(m[3])));
  m = /^(\d{1,2})[-/.\s](\d{1,2})[-/.\s](\d{2}|\d{4})$/.exec(s);
  if (m) return orFail(iso(fullYear(m[3], today), Number(m[2]), Number(m[1])));
  // Words: "22 de noviembre de 2026", "November 22, 2026", "22 nov 2026".
  const words = normaliseAnswer(s).split(' ').filter((w) => !['de', 'del', 'of', 'the', 'le', 'do', 'da'].includes(w));
  let day: number | null = null;
  let month: number | null = null;
  let year: number | null = null;
  for (const w of words) {
    const stripped = w.replace(/(st|nd|rd|th|er|o)$/, '');
    if (MONTHS[w] !== undefined && month === null) month = MONTHS[w];
    else if (/^\d{4}$/.test(w) && year === null) year = Number(w);
    else if (/^\d{1,2}$/.test(stripped) && day === null) day = Number(stripped);
    else return fail({ code: 'date' });
  }
  if (day !== null && month !== null) return orFail(iso(year ?? Number(today.slice(0, 4)), month, day));
  return fail({ code: 'date' });
}

function orFail(v: string | null): Parsed<string> {
  return v ? ok(v) : fail({ code: 'date' });
}
