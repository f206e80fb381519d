/**
 * The conversational engine, pure: (survey, session state, input) → (new state, messages, events).
 * No database, no channel, no clock of its own (the time comes in with the input), so it is tested
 * and benchmarked on its own, and the same state always gives the same conversation.
 *
 * A session goes: [language question] → [opening consent question] → the questions in order.
 * Questions that are not relevant are skipped (and their values cleared), calculations are
 * evaluated, notes are said on the way, each answer is read by its type and checked against
 * its constraint; an invalid answer is asked again with the reason, at most `maxAttempts` times,
 * after which an optional question is skipped and a required one ends the session.
 *
 * Messages are abstract ("ask this question with these choices"); render.ts lays them out for
 * WhatsApp or SMS. STOP and the other global keywords never reach the engine: the router handles
 * them first.
 */
import { parseDate, parseDecimal, parseInteger, parseMany, parseOne, type MatchChoice, type ParseError } from './answers.js';
import { LABEL_REF, normaliseAnswer, textIn, type CompiledItem, type CompiledSurvey, type LangText } from './definition.js';
import { toStr, type Env, type Value } from './expr.js';
import { chrome, nativeName, NO_ANSWERS, SKIP_WORDS, YES_ANSWERS } from './strings.js';

export type AnswerValue = string | number | string[];

export const LANGUAGE_STEP = '~language';
export const CONSENT_STEP = '~consent';

export interface SessionState {
  v: 1;
  status: 'active' | 'completed' | 'ended';
  /** What the session waits for: the language question, the consent question, an item index, or nothing. */
  at: number | typeof LANGUAGE_STEP | typeof CONSENT_STEP | null;
  values: Record<string, AnswerValue>;
  /** Invalid answers so far to the question at `at`. */
  attempts: number;
  lang: string;
  /** The answer to the opening question (null when none was asked yet). */
  consent: boolean | null;
  startedAt: string;
  endReason: 'declined' | 'attempts' | null;
}

export type QuestionKind = 'select_one' | 'select_multiple' | 'integer' | 'decimal' | 'text' | 'date' | 'language' | 'consent';

export interface ChoiceView {
  key: string;
  label: string;
}

export interface QuestionMessage {
  kind: 'question';
  /** Item name, or ~language / ~consent. */
  name: string;
  qtype: QuestionKind;
  text: string;
  hint: string | null;
  choices: ChoiceView[];
  required: boolean;
  /** SKIP is accepted (optional question, or one with a default). */
  canSkip: boolean;
  /** Why the last answer was not accepted. */
  error: string | null;
  prefix: 'reminder' | 'resume' | null;
  lang: string;
  /** For the consent question: minutes, and whether answers are kept. */
  consent?: { title: string; minutes: number; keep: boolean };
}

export interface NoteMessage {
  kind: 'note';
  name: string;
  text: string;
  lang: string;
}

export interface EndMessage {
  kind: 'end';
  reason: 'completed' | 'declined' | 'attempts';
  /** The survey's own closing text, when it has one. */
  text: string | null;
  lang: string;
}

export type EngineMessage = QuestionMessage | NoteMessage | EndMessage;

export type EngineEvent =
  | { type: 'asked'; name: string }
  | { type: 'answered'; name: string; value: AnswerValue }
  | { type: 'calculated'; name: string; value: AnswerValue | null }
  | { type: 'skipped'; name: string; reason: 'skip' | 'attempts' | 'no_choices'; value: AnswerValue | null }
  | { type: 'invalid'; name: string; code: string }
  | { type: 'language'; lang: string }
  | { type: 'consent'; granted: boolean }
  | { type: 'completed' }
  | { type: 'ended'; reason: 'declined' | 'attempts' };

export type EngineInput =
  | {
      type: 'start';
      /** The contact's language, if known; the session speaks it when the survey has it. */
      language?: string | null;
      /** Ask the language first (when the survey has more than one and the contact's is unknown). */
      askLanguage?: boolean;
      /** Values for the survey's parameters. */
      params?: Record<string, AnswerValue>;
    }
  | { type: 'answer'; text: string | null; payload?: string | null }
  | { type: 'repeat'; reason: 'reminder' | 'resume' };

export interface StepResult {
  state: SessionState;
  messages: EngineMessage[];
  events: EngineEvent[];
  /** The input was a valid answer (it moved the session on). */
  accepted: boolean;
}

export interface StepOptions {
  now: Date;
}

/** The id a WhatsApp button or list row carries for a choice: "sv:<question>:<n>" (n is 1-based), or ":skip". */
export function choicePayload(name: string, n: number | 'skip'): string {
  return `sv:${name}:${n}`;
}

function parsePayload(payload: string | null | undefined): { name: string; n: number | 'skip' } | null {
  if (!payload || !payload.startsWith('sv:')) return null;
  const i = payload.lastIndexOf(':');
  const name = payload.slice(3, i);
  const tail = payload.slice(i + 1);
  if (tail === 'skip') return { name, n: 'skip' };
  const n = Number(tail);
  return Number.isInteger(n) && n > 0 ? { name, n } : null;
}

// ------------------------------------------------------------------------------------ helpers

type ChoiceRow = MatchChoice & { label: string; name: string };
/** Choice rows per compiled survey, item and language (only for items whose rows never change). */
const choiceRows = new WeakMap<CompiledSurvey, Map<string, ChoiceRow[]>>();

let lastDay = { ms: NaN, iso: '' };
function isoDate(d: Date): string {
  const ms = d.getTime();
  if (ms !== lastDay.ms) lastDay = { ms, iso: d.toISOString().slice(0, 10) };
  return lastDay.iso;
}

/** What expressions read: the session's values (select_multiple as space-separated names). */
class ValuesEnv implements Env {
  constructor(
    private readonly values: Record<string, AnswerValue>,
    readonly self: Value,
    readonly today: string,
    readonly col?: (name: string) => string,
  ) {}

  get(name: string): Value {
    const v = this.values[name];
    if (v === undefined) return '';
    return Array.isArray(v) ? v.join(' ') : v;
  }
}

class Run {
  readonly messages: EngineMessage[] = [];
  readonly events: EngineEvent[] = [];
  readonly state: SessionState;
  readonly today: string;

  constructor(
    readonly survey: CompiledSurvey,
    state: SessionState,
    readonly now: Date,
  ) {
    this.state = { ...state, values: { ...state.values } };
    this.today = isoDate(now);
  }

  get lang(): string {
    return this.state.lang;
  }

  text(t: LangText | null | undefined): string {
    return this.interpolate(textIn(t, this.lang, this.survey.def.defaultLanguage));
  }

  private baseEnv: Env | null = null;

  /** The values as expressions see them (the values are changed in place during a step). */
  env(self: Value = '', col?: (name: string) => string): Env {
    if (self === '' && !col) return (this.baseEnv ??= new ValuesEnv(this.state.values, '', this.today));
    return new ValuesEnv(this.state.values, self, this.today, col);
  }

  /** "Hello ${name}": answers shown as people gave them (choice labels, not keys). */
  interpolate(s: string): string {
    if (!s.includes('${')) return s;
    return s.replace(LABEL_REF, (_, name: string) => this.display(name));
  }

  display(name: string): string {
    const v = this.state.values[name];
    if (v === undefined) return '';
    const item = this.survey.byName.get(name);
    if (item && item.choices.length) {
      const keys = Array.isArray(v) ? v : [String(v)];
      return keys.map((k) => textIn(item.choices.find((c) => c.name === k)?.label, this.lang, this.survey.def.defaultLanguage) || k).join(', ');
    }
    return Array.isArray(v) ? v.join(', ') : toStr(v);
  }

  relevant(item: CompiledItem): boolean {
    if (item.relevance.length === 0) return true;
    const env = this.env();
    for (const f of item.relevance) {
      const r = f(env);
      if (!(typeof r === 'boolean' ? r : toBoolLoose(r))) return false;
    }
    return true;
  }

  required(item: CompiledItem): boolean {
    if (item.requiredFn) return toBoolLoose(item.requiredFn(this.env()));
    return item.required === 'true';
  }

  /** Recomputes every calculation in order (a non-relevant one is empty); reports those that changed. */
  recalc(): void {
    const values = this.state.values;
    for (const i of this.survey.calculations) {
      const item = this.survey.items[i];
      let next: AnswerValue | null = null;
      if (this.relevant(item)) {
        const v = item.calculationFn!(this.env());
        next = typeof v === 'boolean' ? (v ? 'true' : 'false') : typeof v === 'number' && !Number.isFinite(v) ? null : v;
      }
      const prev = values[item.name];
      if (next === null || next === '') {
        if (prev !== undefined) {
          delete values[item.name];
          this.events.push({ type: 'calculated', name: item.name, value: null });
        }
      } else if (prev !== next) {
        values[item.name] = next;
        this.events.push({ type: 'calculated', name: item.name, value: next });
      }
    }
  }

  choicesOf(item: CompiledItem): ChoiceRow[] {
    // Without a filter or answers in the labels, the rows are the same every time: kept per language.
    const cacheable = !item.choiceFilterFn && !item.choices.some((c) => Object.values(c.label).some((l) => l.includes('${')));
    const key = `${item.index}|${this.lang}`;
    if (cacheable) {
      const hit = choiceRows.get(this.survey)?.get(key);
      if (hit) return hit;
    }
    let list = item.choices;
    if (item.choiceFilterFn) {
      const fn = item.choiceFilterFn;
      list = list.filter((c) => toBoolLoose(fn(this.env('', (n) => (n === 'name' ? c.name : c.props[n] ?? '')))));
    }
    const rows = list.map((c) => ({ key: c.name, name: c.name, match: c.match, label: this.interpolate(textIn(c.label, this.lang, this.survey.def.defaultLanguage)) }));
    if (cacheable) {
      let m = choiceRows.get(this.survey);
      if (!m) choiceRows.set(this.survey, (m = new Map()));
      m.set(key, rows);
    }
    return rows;
  }

  defaultOf(item: CompiledItem): AnswerValue | null {
    if (item.default === null) return null;
    if (item.defaultFn) {
      const v = item.defaultFn(this.env());
      const s = toStr(v);
      return s === '' ? null : item.type === 'integer' || item.type === 'decimal' ? Number(s) : s;
    }
    if (item.type === 'integer' || item.type === 'decimal') return Number(item.default);
    if (item.type === 'select_multiple') return item.default.split(/\s+/);
    return item.default;
  }

  ask(item: CompiledItem, error: string | null, prefix: QuestionMessage['prefix'] = null, rows?: ChoiceRow[]): void {
    const required = this.required(item);
    const choices = item.choices.length ? (rows ?? this.choicesOf(item)).map((c) => ({ key: c.key, label: c.label })) : [];
    this.messages.push({
      kind: 'question',
      name: item.name,
      qtype: item.type as QuestionKind,
      text: this.text(item.label),
      hint: item.hint ? this.text(item.hint) || null : null,
      choices,
      required,
      canSkip: !required || item.default !== null,
      error,
      prefix,
      lang: this.lang,
    });
  }

  askLanguage(error: string | null, prefix: QuestionMessage['prefix'] = null): void {
    const langs = this.survey.def.languages;
    this.messages.push({
      kind: 'question',
      name: LANGUAGE_STEP,
      qtype: 'language',
      text: [...new Set(langs.map((l) => chrome(l, 'language_prompt')))].join(' / '),
      hint: null,
      choices: langs.map((l) => ({ key: l, label: nativeName(l) })),
      required: true,
      canSkip: false,
      error,
      prefix,
      lang: this.lang,
    });
  }

  askConsent(error: string | null, prefix: QuestionMessage['prefix'] = null): void {
    const s = this.survey;
    this.messages.push({
      kind: 'question',
      name: CONSENT_STEP,
      qtype: 'consent',
      text: '',
      hint: null,
      choices: [
        { key: 'yes', label: chrome(this.lang, 'consent_yes') },
        { key: 'no', label: chrome(this.lang, 'consent_no') },
      ],
      required: true,
      canSkip: false,
      error,
      prefix,
      lang: this.lang,
      consent: {
        title: this.text(s.def.title),
        minutes: s.def.settings.estimatedMinutes ?? Math.max(1, Math.ceil(s.askable / 3)),
        keep: s.def.settings.keepAnswers,
      },
    });
  }

  /** Moves to the first askable item at or after `from`, saying notes on the way; completes at the end. */
  advance(from: number): void {
    const { items } = this.survey;
    const values = this.state.values;
    this.recalc();
    for (let i = from; i < items.length; i++) {
      const item = items[i];
      if (item.type === 'calculate' || item.type === 'start' || item.type === 'end' || item.type === 'today') continue;
      if (!this.relevant(item)) {
        if (values[item.name] !== undefined) delete values[item.name];
        continue;
      }
      if (item.type === 'note') {
        const text = this.text(item.label);
        if (text) this.messages.push({ kind: 'note', name: item.name, text, lang: this.lang });
        continue;
      }
      const rows = item.choices.length ? this.choicesOf(item) : undefined;
      if (rows && rows.length === 0) {
        this.events.push({ type: 'skipped', name: item.name, reason: 'no_choices', value: null });
        continue;
      }
      this.state.at = i;
      this.state.attempts = 0;
      this.events.push({ type: 'asked', name: item.name });
      this.ask(item, null, null, rows);
      return;
    }
    this.complete();
  }

  complete(): void {
    const endItem = this.survey.items.find((i) => i.type === 'end');
    if (endItem) {
      this.state.values[endItem.name] = this.now.toISOString();
      this.events.push({ type: 'calculated', name: endItem.name, value: this.now.toISOString() });
    }
    this.recalc();
    this.state.status = 'completed';
    this.state.at = null;
    this.events.push({ type: 'completed' });
    const closing = this.survey.def.settings.closing;
    this.messages.push({ kind: 'end', reason: 'completed', text: closing ? this.text(closing) : null, lang: this.lang });
  }

  end(reason: 'declined' | 'attempts'): void {
    this.state.status = 'ended';
    this.state.at = null;
    this.state.endReason = reason;
    this.events.push({ type: 'ended', reason });
    this.messages.push({ kind: 'end', reason, text: null, lang: this.lang });
  }

  /** After the language question: the consent question or the first question. */
  afterLanguage(): void {
    if (this.survey.def.settings.consentQuestion) {
      this.state.at = CONSENT_STEP;
      this.state.attempts = 0;
      this.events.push({ type: 'asked', name: CONSENT_STEP });
      this.introNote();
      this.askConsent(null);
    } else {
      this.introNote();
      this.advance(0);
    }
  }

  introNote(): void {
    const intro = this.survey.def.settings.intro;
    if (intro) this.messages.push({ kind: 'note', name: '~intro', text: this.text(intro), lang: this.lang });
  }

  errorText(e: ParseError): string {
    switch (e.code) {
      case 'not_understood':
        return chrome(this.lang, 'err_not_understood');
      case 'choose_number':
        return chrome(this.lang, 'err_choose_number', { from: e.from, to: e.to });
      case 'one_only':
        return chrome(this.lang, 'err_one_only');
      case 'integer':
        return chrome(this.lang, 'err_integer');
      case 'decimal':
        return chrome(this.lang, 'err_decimal');
      case 'date':
        return chrome(this.lang, 'err_date');
      case 'text':
        return chrome(this.lang, 'err_text');
    }
  }

  /** An invalid answer: ask again, or give up after maxAttempts. */
  invalid(code: string, reask: () => void, onGiveUp: () => void): void {
    const name = typeof this.state.at === 'number' ? this.survey.items[this.state.at].name : String(this.state.at);
    this.events.push({ type: 'invalid', name, code });
    this.state.attempts += 1;
    if (this.state.attempts >= this.survey.def.settings.maxAttempts) {
      onGiveUp();
      return;
    }
    reask();
  }
}

function toBoolLoose(v: Value): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  return v.length > 0;
}

// ------------------------------------------------------------------------------------ the step

/** A new session's state (before the start input). */
export function initialState(survey: CompiledSurvey, now: Date, language?: string | null): SessionState {
  const langs = survey.def.languages;
  const lang = language && langs.includes(language) ? language : language && langs.includes(language.split('-')[0]) ? language.split('-')[0] : survey.def.defaultLanguage;
  return { v: 1, status: 'active', at: null, values: {}, attempts: 0, lang, consent: null, startedAt: now.toISOString(), endReason: null };
}

export function step(survey: CompiledSurvey, state: SessionState, input: EngineInput, opts: StepOptions): StepResult {
  const run = new Run(survey, state, opts.now);
  const s = run.state;
  let accepted = false;
  if (s.status !== 'active') return { state: s, messages: [], events: [], accepted };

  if (input.type === 'start') {
    for (const [k, v] of Object.entries(input.params ?? {})) if (survey.def.settings.parameters.includes(k)) s.values[k] = v;
    for (const item of survey.items) {
      if (item.type === 'start') s.values[item.name] = s.startedAt;
      if (item.type === 'today') s.values[item.name] = run.today;
    }
    const known = input.language && survey.def.languages.some((l) => l === input.language || l === input.language!.split('-')[0]);
    if (input.askLanguage && survey.def.languages.length > 1 && !known) {
      s.at = LANGUAGE_STEP;
      s.attempts = 0;
      run.events.push({ type: 'asked', name: LANGUAGE_STEP });
      run.askLanguage(null);
    } else run.afterLanguage();
    return { state: s, messages: run.messages, events: run.events, accepted: true };
  }

  if (input.type === 'repeat') {
    if (s.at === LANGUAGE_STEP) run.askLanguage(null, input.reason);
    else if (s.at === CONSENT_STEP) run.askConsent(null, input.reason);
    else if (typeof s.at === 'number') run.ask(survey.items[s.at], null, input.reason);
    return { state: s, messages: run.messages, events: run.events, accepted };
  }

  // ----------------------------------------------------------------------------- an answer
  const text = (input.text ?? '').trim();
  const payload = parsePayload(input.payload);
  const current = s.at === LANGUAGE_STEP || s.at === CONSENT_STEP ? s.at : typeof s.at === 'number' ? survey.items[s.at].name : null;
  if (current === null) return { state: s, messages: [], events: [], accepted };
  const stale = payload !== null && payload.name !== current;

  if (s.at === LANGUAGE_STEP) {
    const choices: MatchChoice[] = survey.def.languages.map((l) => ({ key: l, match: [normaliseAnswer(nativeName(l)), normaliseAnswer(l)] }));
    let lang: string | null = null;
    if (payload && !stale && payload.n !== 'skip' && payload.n <= choices.length) lang = choices[payload.n - 1].key;
    else if (!stale) {
      const r = parseOne(text, choices);
      if (r.ok) lang = r.value;
    }
    if (lang) {
      s.lang = lang;
      run.events.push({ type: 'language', lang });
      accepted = true;
      run.afterLanguage();
    } else {
      const err = stale ? chrome(s.lang, 'err_stale') : chrome(s.lang, 'err_choose_number', { from: 1, to: choices.length });
      if (stale) run.askLanguage(err);
      else run.invalid('not_understood', () => run.askLanguage(err), () => run.end('attempts'));
    }
    return { state: s, messages: run.messages, events: run.events, accepted };
  }

  if (s.at === CONSENT_STEP) {
    let answer: boolean | null = null;
    if (payload && !stale && payload.n !== 'skip') answer = payload.n === 1 ? true : payload.n === 2 ? false : null;
    else if (!stale) {
      const n = normaliseAnswer(text);
      if (n === '1' || YES_ANSWERS.has(n) || n === normaliseAnswer(chrome(s.lang, 'yes')) || n === normaliseAnswer(chrome(s.lang, 'consent_yes'))) answer = true;
      else if (n === '2' || NO_ANSWERS.has(n) || n === normaliseAnswer(chrome(s.lang, 'no')) || n === normaliseAnswer(chrome(s.lang, 'consent_no'))) answer = false;
    }
    if (answer === null) {
      const err = stale ? chrome(s.lang, 'err_stale') : chrome(s.lang, 'err_choose_number', { from: 1, to: 2 });
      if (stale) run.askConsent(err);
      else run.invalid('not_understood', () => run.askConsent(err), () => run.end('attempts'));
      return { state: s, messages: run.messages, events: run.events, accepted };
    }
    s.consent = answer;
    run.events.push({ type: 'consent', granted: answer });
    accepted = true;
    if (answer) run.advance(0);
    else run.end('declined');
    return { state: s, messages: run.messages, events: run.events, accepted };
  }

  const item = survey.items[s.at as number];
  const required = run.required(item);
  const canSkip = !required || item.default !== null;
  // (Plain functions, not arrow constants: the test runner's transpiler names each arrow it creates.)
  function reask(err: string) {
    return function () {
      run.ask(item, err);
    };
  }
  function giveUp() {
    if (!required) {
      run.events.push({ type: 'skipped', name: item.name, reason: 'attempts', value: null });
      delete s.values[item.name];
      run.advance(item.index + 1);
    } else run.end('attempts');
  }

  if (stale) {
    run.ask(item, chrome(s.lang, 'err_stale'));
    return { state: s, messages: run.messages, events: run.events, accepted };
  }

  const wantsSkip = (payload && payload.n === 'skip') || (!payload && SKIP_WORDS.has(normaliseAnswer(text)));
  if (wantsSkip) {
    if (!canSkip) {
      const err = textIn(item.requiredMessage, s.lang, survey.def.defaultLanguage) ? run.text(item.requiredMessage) : chrome(s.lang, 'err_required');
      run.invalid('required', reask(err), giveUp);
      return { state: s, messages: run.messages, events: run.events, accepted };
    }
    const value = run.defaultOf(item);
    if (value === null) delete s.values[item.name];
    else s.values[item.name] = value;
    run.events.push({ type: 'skipped', name: item.name, reason: 'skip', value });
    accepted = true;
    run.advance(item.index + 1);
    return { state: s, messages: run.messages, events: run.events, accepted };
  }

  // Read the answer by type.
  let value: AnswerValue | null = null;
  let error: ParseError | null = null;
  switch (item.type) {
    case 'select_one': {
      const choices = run.choicesOf(item);
      if (payload && payload.n !== 'skip') {
        if (payload.n <= choices.length) value = choices[payload.n - 1].key;
        else error = { code: 'choose_number', from: 1, to: choices.length };
      } else {
        const r = parseOne(text, choices);
        if (r.ok) value = r.value;
        else error = r.error;
      }
      break;
    }
    case 'select_multiple': {
      const choices = run.choicesOf(item);
      if (payload && payload.n !== 'skip') {
        value = payload.n <= choices.length ? [choices[payload.n - 1].key] : null;
        if (value === null) error = { code: 'choose_number', from: 1, to: choices.length };
      } else {
        const r = parseMany(text, choices);
        if (r.ok) value = r.value;
        else error = r.error;
      }
      break;
    }
    case 'integer': {
      const r = parseInteger(text);
      if (r.ok) value = r.value;
      else error = r.error;
      break;
    }
    case 'decimal': {
      const r = parseDecimal(text);
      if (r.ok) value = r.value;
      else error = r.error;
      break;
    }
    case 'date': {
      const r = parseDate(text, run.today);
      if (r.ok) value = r.value;
      else error = r.error;
      break;
    }
    case 'text':
      if (text === '') error = { code: 'text' };
      else value = text.slice(0, 2000);
      break;
  }
  if (error || value === null) {
    const err = run.errorText(error ?? { code: 'not_understood' });
    run.invalid(error?.code ?? 'not_understood', reask(err), giveUp);
    return { state: s, messages: run.messages, events: run.events, accepted };
  }
  if (item.constraintFn) {
    const self: Value = Array.isArray(value) ? value.join(' ') : value;
    const okay = toBoolLoose(item.constraintFn(run.env(self)));
    if (!okay) {
      const err = item.constraintMessage ? run.text(item.constraintMessage) : chrome(s.lang, 'err_invalid');
      run.invalid('constraint', reask(err), giveUp);
      return { state: s, messages: run.messages, events: run.events, accepted };
    }
  }
  s.values[item.name] = value;
  run.events.push({ type: 'answered', name: item.name, value });
  accepted = true;
  run.advance(item.index + 1);
  return { state: s, messages: run.messages, events: run.events, accepted };
}

/** The question a session waits for, rendered again (reminders, resumption). */
export function currentQuestion(survey: CompiledSurvey, state: SessionState, reason: 'reminder' | 'resume', now: Date): EngineMessage[] {
  return step(survey, state, { type: 'repeat', reason }, { now }).messages;
}

/** The name of the question a session waits for, or null. */
export function waitingFor(survey: CompiledSurvey, state: SessionState): string | null {
  if (state.at === null) return null;
  if (typeof state.at === 'number') return survey.items[state.at]?.name ?? null;
  return state.at;
}
