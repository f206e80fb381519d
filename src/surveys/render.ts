/**
 * How the engine's abstract messages look on each medium.
 *
 * WhatsApp: a single choice becomes reply buttons when it has at most 3 options whose labels fit
 * 20 characters; a list when it has at most 10 options whose labels fit 24 (or, when they do not,
 * fit 72: the row title is "Option n" and the label its description); numbered text otherwise.
 * Several choices, numbers, dates and text are asked in text. Optional questions get a "Skip"
 * button or row when there is room, and "SKIP to skip" otherwise.
 *
 * SMS: numbered options and a short "Reply 1-5" line in the session's language. Of the possible
 * layouts, the richest that needs the fewest segments is sent. The survey's wording is never
 * changed; only the chrome around it is compacted (and kept in GSM-7 where the language allows).
 *
 * Notes are said together with the question that follows them, in one message where it fits.
 */
import { measureSms } from '../channels/sms.js';
import type { Medium, OutboundContent } from '../messaging/types.js';
import { wording } from '../messaging/texts.js';
import { choicePayload, type EngineMessage, type QuestionMessage } from './engine.js';
import { chrome } from './strings.js';

export const WHATSAPP_LIMITS = {
  buttons: 3,
  buttonTitle: 20,
  rows: 10,
  rowTitle: 24,
  rowDescription: 72,
  listButton: 20,
  interactiveBody: 1024,
  text: 4096,
} as const;
/** Longest SMS body the providers accept (Twilio: 1600 characters). */
export const SMS_MAX = 1600;

export interface RenderOptions {
  medium: Medium;
  /** Who the survey is from, for the opening question. */
  programme: string;
}

export interface Rendered {
  content: OutboundContent;
  language: string;
  /** For the consent question: the wording shown (the consent ledger records it). */
  wording?: { key: string; version: string; language: string };
}

/** The body of a question: reminder/resume prefix, the error, the text, the hint. */
function questionHead(m: QuestionMessage, programme: string): { head: string; wording?: Rendered['wording'] } {
  let text = m.text;
  let w: Rendered['wording'];
  if (m.qtype === 'consent' && m.consent) {
    const got = wording('survey-consent', [m.lang], { programme, title: m.consent.title, minutes: m.consent.minutes, one: m.consent.minutes === 1, keep: m.consent.keep });
    text = got.text;
    w = { key: got.key, version: got.version, language: got.language };
  }
  const parts: string[] = [];
  if (m.prefix) parts.push(chrome(m.lang, m.prefix === 'reminder' ? 'prefix_reminder' : 'prefix_resume'));
  if (m.error) parts.push(m.error);
  parts.push(m.hint ? `${text}\n${m.hint}` : text);
  return { head: parts.join('\n'), wording: w };
}

const hasChoices = (m: QuestionMessage) => m.qtype === 'select_one' || m.qtype === 'select_multiple' || m.qtype === 'language' || m.qtype === 'consent';

/** Lines of chrome after the options (SMS and WhatsApp text). */
function chromeLines(m: QuestionMessage, compact: boolean): string[] {
  const lines: string[] = [];
  if (m.qtype === 'select_multiple') lines.push(chrome(m.lang, compact ? 'reply_multi_short' : 'reply_multi'));
  else if (hasChoices(m)) lines.push(chrome(m.lang, 'reply_range', { from: 1, to: m.choices.length }));
  if (m.qtype === 'date') lines.push(chrome(m.lang, 'date_hint'));
  if (m.canSkip) lines.push(chrome(m.lang, 'skip_hint'));
  return lines;
}

/** Numbered-text layouts, richest first. */
function textLayouts(head: string, m: QuestionMessage): string[] {
  if (!hasChoices(m)) {
    const rich = chromeLines(m, false);
    const compact = chromeLines(m, true);
    const out = [rich.length ? `${head}\n\n${rich.join('\n')}` : head];
    if (rich.length) out.push(`${head}\n${compact.join(' - ')}`);
    return out;
  }
  const dotted = m.choices.map((c, i) => `${i + 1}. ${c.label}`).join('\n');
  const plain = m.choices.map((c, i) => `${i + 1} ${c.label}`).join('\n');
  const rich = chromeLines(m, false);
  const compact = chromeLines(m, true);
  return [
    `${head}\n\n${dotted}\n\n${rich.join('\n')}`,
    `${head}\n${plain}\n${rich.join('\n')}`,
    `${head}\n${plain}\n${compact.join(' - ')}`,
  ];
}

/** The SMS text of a question: of the layouts, the first that needs the fewest segments. */
export function smsQuestion(m: QuestionMessage, programme: string, notes: string[] = []): { text: string; wording?: Rendered['wording'] } {
  const { head, wording: w } = questionHead(m, programme);
  const full = notes.length ? `${notes.join('\n\n')}\n\n${head}` : head;
  const candidates = textLayouts(full, m);
  let best = candidates[0];
  let bestSegments = measureSms(best).segments;
  for (const c of candidates.slice(1)) {
    const s = measureSms(c).segments;
    if (s < bestSegments) {
      best = c;
      bestSegments = s;
    }
  }
  return { text: best, wording: w };
}

/** The WhatsApp content of a question: buttons, a list, or text. */
export function whatsappQuestion(m: QuestionMessage, programme: string, notes: string[] = []): { content: OutboundContent; wording?: Rendered['wording'] } {
  const { head, wording: w } = questionHead(m, programme);
  const body = notes.length ? `${notes.join('\n\n')}\n\n${head}` : head;
  const single = m.qtype === 'select_one' || m.qtype === 'language' || m.qtype === 'consent';
  if (single && body.length <= WHATSAPP_LIMITS.interactiveBody) {
    const options = m.choices.map((c, i) => ({ id: choicePayload(m.name, i + 1), title: c.label }));
    const skip = m.canSkip ? { id: choicePayload(m.name, 'skip'), title: chrome(m.lang, 'skip_button') } : null;
    const unique = new Set(options.map((o) => o.title)).size === options.length;
    const fits = (max: number) => options.every((o) => [...o.title].length <= max);
    const skipHint = (room: boolean) => (skip && !room ? `${body}\n${chrome(m.lang, 'skip_hint')}` : body);
    // Reply buttons: up to 3 options (and a skip button when there is room; otherwise "SKIP to skip").
    if (unique && fits(WHATSAPP_LIMITS.buttonTitle) && options.length <= WHATSAPP_LIMITS.buttons) {
      const room = options.length < WHATSAPP_LIMITS.buttons;
      const text = skipHint(room);
      if (text.length <= WHATSAPP_LIMITS.interactiveBody) {
        return { content: { type: 'buttons', text, buttons: skip && room ? [...options, skip] : options }, wording: w };
      }
    }
    // A list: up to 10 rows; titles are the labels (up to 24), or "Option n" with the label (up to 72) as description.
    if (options.length <= WHATSAPP_LIMITS.rows) {
      const room = options.length < WHATSAPP_LIMITS.rows;
      const text = skipHint(room);
      const button = chrome(m.lang, 'list_button').slice(0, WHATSAPP_LIMITS.listButton);
      const skipRow = skip && room ? [{ id: skip.id, title: skip.title }] : [];
      if (text.length <= WHATSAPP_LIMITS.interactiveBody) {
        if (unique && fits(WHATSAPP_LIMITS.rowTitle)) {
          return { content: { type: 'list', text, button, rows: [...options.map((o) => ({ id: o.id, title: o.title })), ...skipRow] }, wording: w };
        }
        if (fits(WHATSAPP_LIMITS.rowDescription)) {
          const rows = options.map((o, i) => ({ id: o.id, title: chrome(m.lang, 'option', { n: i + 1 }).slice(0, WHATSAPP_LIMITS.rowTitle), description: o.title }));
          return { content: { type: 'list', text, button, rows: [...rows, ...skipRow] }, wording: w };
        }
      }
    }
  }
  const layouts = textLayouts(body, m);
  const text = layouts[0].length <= WHATSAPP_LIMITS.text ? layouts[0] : layouts[layouts.length - 1];
  return { content: { type: 'text', text }, wording: w };
}

function endText(m: Extract<EngineMessage, { kind: 'end' }>, programme: string): string {
  if (m.reason === 'completed') return m.text ?? wording('survey-thanks', [m.lang], { programme }).text;
  return wording(m.reason === 'declined' ? 'survey-declined' : 'survey-ended', [m.lang], { programme }).text;
}

/** Splits a text into parts no longer than `max`, at paragraph or line ends where possible. */
function split(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const out: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = rest.lastIndexOf('\n\n', max);
    if (cut < max / 2) cut = rest.lastIndexOf('\n', max);
    if (cut < max / 2) cut = rest.lastIndexOf(' ', max);
    if (cut < max / 2) cut = max;
    out.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest) out.push(rest);
  return out;
}

/** The outbound messages for what the engine said, on one medium. */
export function renderMessages(messages: readonly EngineMessage[], opts: RenderOptions): Rendered[] {
  const out: Rendered[] = [];
  const max = opts.medium === 'sms' ? SMS_MAX : WHATSAPP_LIMITS.text;
  let notes: string[] = [];
  let notesLang = '';
  const flushNotes = () => {
    if (!notes.length) return;
    for (const part of split(notes.join('\n\n'), max)) out.push({ content: { type: 'text', text: part }, language: notesLang });
    notes = [];
  };
  for (const m of messages) {
    if (m.kind === 'note') {
      notes.push(m.text);
      notesLang = m.lang;
      continue;
    }
    if (m.kind === 'end') {
      notes.push(endText(m, opts.programme));
      notesLang = m.lang;
      flushNotes();
      continue;
    }
    // Notes go with the question when together they still fit one message.
    let withNotes = notes;
    if (opts.medium === 'sms') {
      const merged = smsQuestion(m, opts.programme, notes);
      if (merged.text.length > SMS_MAX) {
        flushNotes();
        withNotes = [];
      }
      const r = withNotes.length ? merged : smsQuestion(m, opts.programme);
      for (const part of split(r.text, SMS_MAX)) out.push({ content: { type: 'text', text: part }, language: m.lang, wording: r.wording });
    } else {
      let r = whatsappQuestion(m, opts.programme, notes);
      if (notes.length && r.content.type === 'text' && whatsappQuestion(m, opts.programme).content.type !== 'text') {
        // The notes pushed an interactive message over its body limit: send them first.
        flushNotes();
        withNotes = [];
        r = whatsappQuestion(m, opts.programme);
      }
      if (r.content.type === 'text') {
        for (const part of split(r.content.text, WHATSAPP_LIMITS.text)) out.push({ content: { type: 'text', text: part }, language: m.lang, wording: r.wording });
      } else out.push({ content: r.content, language: m.lang, wording: r.wording });
    }
    notes = [];
  }
  flushNotes();
  return out;
}

/** Plain text of any content, as a person on SMS would read it (for previews and logs of the simulator). */
export function plainText(content: OutboundContent): string {
  switch (content.type) {
    case 'text':
    case 'template':
      return content.text;
    case 'buttons':
      return `${content.text}\n${content.buttons.map((b) => `[${b.title}]`).join(' ')}`;
    case 'list':
      return `${content.text}\n[${content.button}]\n${content.rows.map((r) => `- ${r.title}${r.description ? ` (${r.description})` : ''}`).join('\n')}`;
  }
}
