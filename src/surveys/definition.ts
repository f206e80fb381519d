/**
 * A survey definition as Ayni runs it, whichever file it came from (YAML in Ayni's schema, or an
 * XLSForm). Loaders build a `SurveyDefinition` (plain JSON: this is the snapshot stored per
 * version) with the place in the source file of every field; `checkDefinition` validates what
 * both formats share (names, references, expressions, choice lists); `compileSurvey` turns it
 * into the form the engine runs. The version is the hash of the definition's content.
 */
import { editDistance } from '../util/text.js';
import { createHash } from 'node:crypto';
import { compileExpression, ExprError, references, type Compiled, type Node } from './expr.js';

export const QUESTION_TYPES = ['select_one', 'select_multiple', 'integer', 'decimal', 'text', 'note', 'calculate', 'date'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];
/** Filled by the engine, never asked (XLSForm metadata types). */
export const META_TYPES = ['start', 'end', 'today'] as const;
export type MetaType = (typeof META_TYPES)[number];
export type ItemType = QuestionType | MetaType;

/** Text per language code: {"es": "¿Tiene teléfono?", "en": "Do you have a phone?"}. */
export type LangText = Record<string, string>;

export interface ChoiceDef {
  name: string;
  label: LangText;
  /** Other columns of the choice (for choice_filter). */
  props: Record<string, string>;
}

export interface ItemDef {
  name: string;
  type: ItemType;
  label: LangText | null;
  hint: LangText | null;
  /** 'true', 'false' or an expression. */
  required: string;
  requiredMessage: LangText | null;
  relevant: string | null;
  constraint: string | null;
  constraintMessage: LangText | null;
  calculation: string | null;
  /** Choice list name (select_one / select_multiple). */
  list: string | null;
  choiceFilter: string | null;
  /** A literal value, or an expression when it contains ${...}. */
  default: string | null;
  /** Innermost group, or null. */
  group: string | null;
}

export interface GroupDef {
  name: string;
  label: LangText | null;
  relevant: string | null;
  parent: string | null;
}

export interface SurveySettings {
  /** Ask "do you want to take part?" first (voluntary, duration, no effect on assistance). */
  consentQuestion: boolean;
  /** With consent, keep the raw text of the messages that carried answers (retention would erase it otherwise). */
  keepAnswers: boolean;
  /** Invalid answers to one question before it is skipped (optional) or the session ends (required). */
  maxAttempts: number;
  estimatedMinutes: number | null;
  /** Session expiry after silence, and the first reminder; null: the run's or the default. */
  expiryHours: number | null;
  reminderHours: number | null;
  intro: LangText | null;
  closing: LangText | null;
  /** Names filled from the context a session is started with (PDM amount, complaint id…), usable as ${name}. */
  parameters: string[];
}

export interface SurveyDefinition {
  key: string;
  title: LangText;
  /** The author's own version label (XLSForm settings.version); the real version is the content hash. */
  versionLabel: string | null;
  defaultLanguage: string;
  languages: string[];
  settings: SurveySettings;
  items: ItemDef[];
  groups: GroupDef[];
  choiceLists: Record<string, ChoiceDef[]>;
  format: 'yaml' | 'xlsform';
}

/** Where a field came from, for error messages: "survey sheet, row 12, column relevant" or "line 30 (questions[4].relevant)". */
export type Locate = (ref: { item?: number; group?: string; field?: string; list?: string; choice?: number }) => string;

export interface DefinitionProblem {
  where: string;
  message: string;
}

export class DefinitionError extends Error {
  constructor(
    readonly file: string,
    readonly problems: DefinitionProblem[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` + problems.map((p) => `  ${p.where}: ${p.message}`).join('\n'));
    this.name = 'DefinitionError';
  }
}

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
export const KEY_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const LANG_RE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;

// ----------------------------------------------------------------------------------- checking

/** Labels can refer to answers: "Thank you ${name}". */
export const LABEL_REF = /\$\{\s*([^}]*?)\s*\}/g;

/**
 * Checks what every format shares. Returns the problems (empty when the definition is sound).
 * `locate` turns a reference into the place in the source file.
 */
export function checkDefinition(def: SurveyDefinition, locate: Locate, opts: { refused?: ReadonlySet<string> } = {}): DefinitionProblem[] {
  const problems: DefinitionProblem[] = [];
  const add = (where: string, message: string) => problems.push({ where, message });
  if (!KEY_RE.test(def.key)) add(locate({ field: 'id' }), `"${def.key}" is not a valid survey id: lowercase letters, digits, - and _ (at most 64)`);
  if (!def.languages.includes(def.defaultLanguage)) add(locate({ field: 'default_language' }), `the default language ${def.defaultLanguage} is not one of the languages (${def.languages.join(', ')})`);
  for (const l of def.languages) if (!LANG_RE.test(l)) add(locate({ field: 'languages' }), `"${l}" is not a language code such as es or en`);

  const names = new Map<string, number>();
  def.settings.parameters.forEach((p) => {
    if (!NAME_RE.test(p)) add(locate({ field: 'parameters' }), `"${p}" is not a valid name`);
    names.set(p, -1);
  });
  def.items.forEach((it, i) => {
    if (!NAME_RE.test(it.name)) {
      add(locate({ item: i, field: 'name' }), `"${it.name}" is not a valid name: start with a letter or _, then letters, digits, _ . - (at most 64)`);
    } else if (names.has(it.name)) {
      add(locate({ item: i, field: 'name' }), `the name "${it.name}" is used twice`);
    } else names.set(it.name, i);
  });
  for (const g of def.groups) {
    if (!NAME_RE.test(g.name)) add(locate({ group: g.name, field: 'name' }), `"${g.name}" is not a valid group name`);
    else if (names.has(g.name)) add(locate({ group: g.name, field: 'name' }), `the name "${g.name}" is used twice`);
  }

  // Names of rows already refused (an unsupported type): references to them are not a second problem.
  const known = (n: string) => names.has(n) || Boolean(opts.refused?.has(n));
  const checkExpr = (src: string | null, where: string, opts: { columns?: Set<string>; self?: boolean } = {}) => {
    if (src === null) return;
    try {
      const { node } = compileExpression(src, { columns: opts.columns });
      for (const r of references(node)) if (!known(r.name)) add(where, `\${${r.name}} is not a question of this survey${suggest(r.name, names.keys())}`);
      checkSelfUse(node, where, opts.self ?? true, add);
    } catch (e) {
      if (e instanceof ExprError) add(where, `${e.message} (at character ${e.offset + 1} of "${src}")`);
      else throw e;
    }
  };
  const checkText = (t: LangText | null, where: string) => {
    if (!t) return;
    for (const [lang, s] of Object.entries(t)) {
      if (!def.languages.includes(lang)) add(where, `text in ${lang}, which is not one of the survey's languages (${def.languages.join(', ')})`);
      for (const m of s.matchAll(LABEL_REF)) {
        if (!known(m[1])) add(where, `\${${m[1]}} is not a question of this survey${suggest(m[1], names.keys())}`);
      }
    }
  };
  checkText(def.title, locate({ field: 'title' }));
  checkText(def.settings.intro, locate({ field: 'intro' }));
  checkText(def.settings.closing, locate({ field: 'closing' }));

  def.items.forEach((it, i) => {
    const at = (field: string) => locate({ item: i, field });
    const asked = it.type !== 'calculate' && !(META_TYPES as readonly string[]).includes(it.type);
    if (asked && !hasText(it.label)) add(at('label'), `the ${it.type === 'note' ? 'note' : 'question'} "${it.name}" has no label`);
    checkText(it.label, at('label'));
    checkText(it.hint, at('hint'));
    checkText(it.constraintMessage, at('constraint_message'));
    checkText(it.requiredMessage, at('required_message'));
    if (it.required !== 'true' && it.required !== 'false') checkExpr(it.required, at('required'));
    checkExpr(it.relevant, at('relevant'));
    checkExpr(it.constraint, at('constraint'));
    if (it.type === 'calculate') {
      if (!it.calculation) add(at('calculation'), `the calculation "${it.name}" has no expression`);
      checkExpr(it.calculation, at('calculation'), { self: false });
    } else if (it.calculation) add(at('calculation'), `only calculate rows have a calculation (this is ${it.type})`);
    if (it.type === 'select_one' || it.type === 'select_multiple') {
      if (!it.list) add(at('type'), `${it.type} needs a choice list`);
      else if (!def.choiceLists[it.list]) add(at('type'), `there is no choice list "${it.list}"${suggest(it.list, Object.keys(def.choiceLists))}`);
      else if (def.choiceLists[it.list].length === 0) add(at('type'), `the choice list "${it.list}" is empty`);
      if (it.choiceFilter && it.list && def.choiceLists[it.list]) {
        const cols = new Set<string>(['name']);
        for (const c of def.choiceLists[it.list]) for (const k of Object.keys(c.props)) cols.add(k);
        checkExpr(it.choiceFilter, at('choice_filter'), { columns: cols });
      }
    } else if (it.choiceFilter) add(at('choice_filter'), `only select questions have a choice_filter`);
    if (it.type === 'note' && it.required === 'true') add(at('required'), 'a note cannot be required');
    if (it.default !== null) {
      if (it.default.includes('${')) checkExpr(it.default, at('default'));
      else {
        const problem = literalProblem(it, it.default, def);
        if (problem) add(at('default'), problem);
      }
    }
  });
  for (const g of def.groups) checkExpr(g.relevant, locate({ group: g.name, field: 'relevant' }));
  for (const [list, choices] of Object.entries(def.choiceLists)) {
    choices.forEach((c, ci) => {
      if (c.name === '') add(locate({ list, choice: ci, field: 'name' }), 'the choice has no name');
      if (!hasText(c.label)) add(locate({ list, choice: ci, field: 'label' }), `the choice "${c.name}" has no label`);
      checkText(c.label, locate({ list, choice: ci, field: 'label' }));
      if (/\s/.test(c.name) && def.items.some((it) => it.list === list && it.type === 'select_multiple')) {
        add(locate({ list, choice: ci, field: 'name' }), `the choice name "${c.name}" has a space, which a select_multiple answer cannot hold`);
      }
    });
  }
  if (!def.items.some((it) => it.type !== 'calculate' && !(META_TYPES as readonly string[]).includes(it.type))) {
    add(locate({}), 'the survey has no questions');
  }
  if (def.settings.maxAttempts < 1 || def.settings.maxAttempts > 10) add(locate({ field: 'max_attempts' }), 'must be from 1 to 10');
  return problems;
}

function checkSelfUse(node: Node, where: string, allowed: boolean, add: (w: string, m: string) => void) {
  if (allowed) return;
  const walk = (n: Node): boolean => {
    if (n.t === 'self') return true;
    if (n.t === 'bin') return walk(n.l) || walk(n.r);
    if (n.t === 'neg') return walk(n.e);
    if (n.t === 'call') return n.args.some(walk);
    return false;
  };
  if (walk(node)) add(where, '"." (the current answer) has no meaning here');
}

function hasText(t: LangText | null): boolean {
  return Boolean(t && Object.values(t).some((s) => s.trim() !== ''));
}

function suggest(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function distance(a: string, b: string): number {
  return Math.abs(a.length - b.length) > 3 ? 99 : editDistance(a, b);
}

/** Whether a literal default suits its question. */
function literalProblem(it: ItemDef, v: string, def: SurveyDefinition): string | null {
  switch (it.type) {
    case 'integer':
      return /^-?\d+$/.test(v) ? null : `the default "${v}" is not a whole number`;
    case 'decimal':
      return /^-?(\d+\.?\d*|\.\d+)$/.test(v) ? null : `the default "${v}" is not a number`;
    case 'date':
      return /^\d{4}-\d{2}-\d{2}$/.test(v) ? null : `the default "${v}" is not a date (YYYY-MM-DD)`;
    case 'select_one':
    case 'select_multiple': {
      const choices = def.choiceLists[it.list ?? ''] ?? [];
      const keys = it.type === 'select_one' ? [v] : v.split(/\s+/);
      const bad = keys.filter((k) => !choices.some((c) => c.name === k));
      return bad.length ? `the default "${bad.join(' ')}" is not a choice of the list "${it.list}"` : null;
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------- versioning

/** Key order fixed, so the same content always hashes alike. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/** The content hash that is a definition's version (16 hex characters). */
export function definitionVersion(def: SurveyDefinition): string {
  return createHash('sha256').update(canonicalJson(def)).digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------------- compiling

export interface CompiledChoice extends ChoiceDef {
  /** Normalised labels in every language and the name, for matching typed answers. */
  match: string[];
}

export interface CompiledItem extends ItemDef {
  index: number;
  /** Own relevance and every enclosing group's, in order from outermost. */
  relevance: Compiled[];
  requiredFn: Compiled | null;
  constraintFn: Compiled | null;
  calculationFn: Compiled | null;
  choiceFilterFn: Compiled | null;
  defaultFn: Compiled | null;
  choices: CompiledChoice[];
  /** Asked of the respondent (not a note, calculation or metadata). */
  asks: boolean;
}

export interface CompiledSurvey {
  def: SurveyDefinition;
  version: string;
  items: CompiledItem[];
  byName: Map<string, CompiledItem>;
  /** Indexes of the calculate items, in order. */
  calculations: number[];
  /** Questions a respondent may be asked (for "about N minutes"). */
  askable: number;
}

/** Lowercase, accents and punctuation removed, spaces collapsed: "¡Sí, claro!" → "si claro". */
export function normaliseAnswer(s: string): string {
  // Plain ASCII (most answers: "2", "1 3", "si"): no accents to remove.
  if (/^[\x00-\x7f]*$/.test(s)) return s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
  return s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/** Compiles a checked definition. Throws if an expression does not compile (run checkDefinition first). */
export function compileSurvey(def: SurveyDefinition, version = definitionVersion(def)): CompiledSurvey {
  const groups = new Map(def.groups.map((g) => [g.name, g]));
  const groupRelevance = new Map<string, Compiled | null>();
  for (const g of def.groups) groupRelevance.set(g.name, g.relevant ? compileExpression(g.relevant).fn : null);
  const chainOf = (group: string | null): Compiled[] => {
    const chain: Compiled[] = [];
    for (let g = group; g; g = groups.get(g)?.parent ?? null) {
      const fn = groupRelevance.get(g);
      if (fn) chain.unshift(fn);
    }
    return chain;
  };
  const items: CompiledItem[] = def.items.map((it, index) => {
    const relevance = chainOf(it.group);
    if (it.relevant) relevance.push(compileExpression(it.relevant).fn);
    let columns: Set<string> | undefined;
    const choices: CompiledChoice[] = (it.list ? def.choiceLists[it.list] ?? [] : []).map((c) => {
      const match = new Set<string>([normaliseAnswer(c.name)]);
      for (const l of Object.values(c.label)) match.add(normaliseAnswer(l));
      match.delete('');
      return { ...c, match: [...match] };
    });
    if (it.choiceFilter) {
      columns = new Set(['name']);
      for (const c of choices) for (const k of Object.keys(c.props)) columns.add(k);
    }
    return {
      ...it,
      index,
      relevance,
      requiredFn: it.required === 'true' || it.required === 'false' ? null : compileExpression(it.required).fn,
      constraintFn: it.constraint ? compileExpression(it.constraint).fn : null,
      calculationFn: it.calculation ? compileExpression(it.calculation).fn : null,
      choiceFilterFn: it.choiceFilter ? compileExpression(it.choiceFilter, { columns }).fn : null,
      defaultFn: it.default !== null && it.default.includes('${') ? compileExpression(it.default).fn : null,
      choices,
      asks: (QUESTION_TYPES as readonly string[]).includes(it.type) && it.type !== 'calculate' && it.type !== 'note',
    };
  });
  return {
    def,
    version,
    items,
    byName: new Map(items.map((i) => [i.name, i])),
    calculations: items.filter((i) => i.type === 'calculate').map((i) => i.index),
    askable: items.filter((i) => i.asks).length,
  };
}

/** Text in the wanted language, else the default language, else any. */
export function textIn(t: LangText | null | undefined, lang: string, fallback: string): string {
  if (!t) return '';
  return t[lang] ?? t[lang.split('-')[0]] ?? t[fallback] ?? Object.values(t)[0] ?? '';
}
