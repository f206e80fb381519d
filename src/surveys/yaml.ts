/**
 * Surveys in Ayni's own YAML schema. The zod schema below is the reference; it is published as
 * JSON Schema at surveys/schema.json (for editors: `# yaml-language-server: $schema=./schema.json`).
 *
 *   settings:
 *     id: needs-assessment            # lowercase letters, digits, - _
 *     title: { es: Necesidades de información, en: Information needs }
 *     default_language: es
 *     languages: [es, en]
 *     consent_question: true          # "voluntary, about N minutes, no effect on assistance — start?"
 *     keep_answers: false             # keep the raw text of answers (the person is told, and agrees)
 *   questions:
 *     - name: has_phone
 *       type: select_one
 *       label: { es: ¿Tiene teléfono propio?, en: Do you have your own phone? }
 *       choices: yes_no               # a list below, or inline: [{ name: yes, label: {...} }, …]
 *       required: true
 *     - group: household
 *       relevant: ${has_phone} = 'yes'
 *       questions: [ … ]
 *   choices:
 *     yes_no:
 *       - { name: yes, label: { es: Sí, en: Yes } }
 *       - { name: no, label: { es: No, en: No } }
 *
 * Problems are reported with their line in the file.
 */
import { z } from 'zod';
import { LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import {
  checkDefinition,
  DefinitionError,
  KEY_RE,
  LANG_RE,
  NAME_RE,
  QUESTION_TYPES,
  type ChoiceDef,
  type DefinitionProblem,
  type GroupDef,
  type ItemDef,
  type LangText,
  type Locate,
  type SurveyDefinition,
} from './definition.js';

const lang = z.string().regex(LANG_RE, { message: 'must be a language code such as es or en' });
const name = z.string().regex(NAME_RE, { message: 'must start with a letter or _, then letters, digits, _ . - (at most 64)' });
const text = z
  .union([z.string().min(1), z.record(lang, z.string())])
  .describe('Text: one string (in the default language) or one per language, e.g. {es: "…", en: "…"}');
const expression = z.string().min(1).describe('An XLSForm expression, e.g. ${age} >= 18 and selected(${topics}, \'health\')');
const scalar = z.union([z.string(), z.number(), z.boolean()]);

const choice = z
  .object({
    name: z.union([z.string().min(1), z.number()]).describe('The value stored for this choice'),
    label: text,
  })
  .catchall(scalar)
  .describe('A choice; any other key is a column choice_filter can read');

const question = z
  .object({
    name,
    type: z.enum(QUESTION_TYPES),
    label: text.optional(),
    hint: text.optional(),
    required: z.union([z.boolean(), expression]).optional().describe('true, false, or an expression'),
    required_message: text.optional(),
    relevant: expression.optional().describe('Asked only when this is true'),
    constraint: expression.optional().describe('The answer (.) must make this true'),
    constraint_message: text.optional(),
    choices: z.union([name, z.array(choice).min(1)]).optional().describe('A list name from `choices`, or the choices inline'),
    choice_filter: expression.optional().describe('Keeps the choices for which this is true; choice columns by name'),
    calculation: expression.optional().describe('For type calculate'),
    default: scalar.optional(),
  })
  .strict();

interface GroupInput {
  group: string;
  label?: z.input<typeof text>;
  relevant?: string;
  questions: (z.input<typeof question> | GroupInput)[];
}

const group: z.ZodType<GroupInput> = z.lazy(() =>
  z
    .object({
      group: name.describe('The group name'),
      label: text.optional(),
      relevant: expression.optional().describe('Every question in the group is asked only when this is true'),
      questions: z.array(z.union([question, group])).min(1),
    })
    .strict(),
);

const settings = z
  .object({
    id: z.string().regex(KEY_RE, { message: 'must be lowercase letters, digits, - and _ (at most 64)' }),
    title: text,
    version: z.union([z.string(), z.number()]).optional().describe('Your own version label; Ayni versions by content hash'),
    default_language: lang,
    languages: z.array(lang).min(1),
    consent_question: z.boolean().optional().describe('Open with "taking part is voluntary… start?" (default true)'),
    keep_answers: z.boolean().optional().describe('Ask to keep the raw text of answers beyond the retention period (default false)'),
    max_attempts: z.number().int().min(1).max(10).optional().describe('Invalid answers before a question is skipped or the session ends (default 3)'),
    estimated_minutes: z.number().int().min(1).max(120).optional(),
    expiry_hours: z.number().int().min(1).max(24 * 60).optional(),
    reminder_hours: z.number().int().min(1).max(24 * 30).optional(),
    intro: text.optional().describe('Said before the first question'),
    closing: text.optional().describe('Said when the survey is complete'),
    parameters: z.array(name).optional().describe('Values given when a session starts (e.g. by the cash or complaints domain), usable as ${name}'),
  })
  .strict();

export const surveyYamlSchema = z
  .object({
    $schema: z.string().optional(),
    settings,
    questions: z.array(z.union([question, group])).min(1),
    choices: z.record(name, z.array(choice).min(1)).optional(),
  })
  .strict()
  .describe('An Ayni survey definition');

/** The JSON Schema published at surveys/schema.json. */
export function surveyJsonSchema(): Record<string, unknown> {
  return {
    ...(z.toJSONSchema(surveyYamlSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>),
    $id: 'https://ayni.invalid/surveys/schema.json',
    title: 'Ayni survey definition',
  };
}

type Path = (string | number)[];

/** Parses YAML text into a definition; throws DefinitionError with line numbers. */
export function loadYamlSurvey(source: string, file: string): SurveyDefinition {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new DefinitionError(
      file,
      doc.errors.map((e) => ({ where: `line ${lineCounter.linePos(e.pos[0]).line}`, message: e.message.split('\n')[0] })),
    );
  }
  const lineOf = (path: Path): string => {
    for (let p = path.slice(); ; p = p.slice(0, -1)) {
      const node = (p.length ? doc.getIn(p, true) : doc.contents) as YamlNode | undefined;
      if (node && (node as { range?: [number, number, number] }).range) {
        const line = lineCounter.linePos((node as { range: [number, number, number] }).range[0]).line;
        return path.length ? `line ${line} (${formatPath(path)})` : `line ${line}`;
      }
      if (p.length === 0) return formatPath(path) || 'the file';
    }
  };
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const parsed = surveyYamlSchema.safeParse(raw);
  if (!parsed.success) {
    const problems: DefinitionProblem[] = [];
    for (const issue of flattenIssues(parsed.error.issues, raw)) problems.push({ where: lineOf(issue.path), message: issue.message });
    throw new DefinitionError(file, dedupe(problems));
  }
  const y = parsed.data;
  const defaultLanguage = y.settings.default_language;
  const langText = (t: z.output<typeof text> | undefined): LangText | null => {
    if (t === undefined) return null;
    if (typeof t === 'string') return { [defaultLanguage]: t };
    const out: LangText = {};
    for (const [k, v] of Object.entries(t)) if (v.trim() !== '') out[k] = v;
    return Object.keys(out).length ? out : null;
  };
  const choiceOf = (c: z.output<typeof choice>): ChoiceDef => {
    const props: Record<string, string> = {};
    for (const [k, v] of Object.entries(c)) if (k !== 'name' && k !== 'label') props[k] = String(v);
    return { name: String(c.name), label: langText(c.label as z.output<typeof text>) ?? {}, props };
  };
  const choiceLists: Record<string, ChoiceDef[]> = {};
  const listPaths = new Map<string, Path>();
  for (const [listName, choices] of Object.entries(y.choices ?? {})) {
    choiceLists[listName] = choices.map(choiceOf);
    listPaths.set(listName, ['choices', listName]);
  }

  const items: ItemDef[] = [];
  const itemPaths: Path[] = [];
  const groups: GroupDef[] = [];
  const groupPaths = new Map<string, Path>();
  const walk = (list: (z.output<typeof question> | GroupInput)[], path: Path, parent: string | null) => {
    list.forEach((entry, i) => {
      const here = [...path, i];
      if ('group' in entry) {
        groups.push({ name: entry.group, label: langText(entry.label as z.output<typeof text> | undefined), relevant: entry.relevant ?? null, parent });
        groupPaths.set(entry.group, here);
        walk(entry.questions, [...here, 'questions'], entry.group);
        return;
      }
      const q = entry;
      let list: string | null = null;
      if (Array.isArray(q.choices)) {
        list = `${q.name}__choices`;
        choiceLists[list] = q.choices.map(choiceOf);
        listPaths.set(list, [...here, 'choices']);
      } else if (typeof q.choices === 'string') list = q.choices;
      items.push({
        name: q.name,
        type: q.type,
        label: langText(q.label),
        hint: langText(q.hint),
        required: q.required === undefined ? 'false' : typeof q.required === 'boolean' ? String(q.required) : q.required,
        requiredMessage: langText(q.required_message),
        relevant: q.relevant ?? null,
        constraint: q.constraint ?? null,
        constraintMessage: langText(q.constraint_message),
        calculation: q.calculation ?? null,
        list,
        choiceFilter: q.choice_filter ?? null,
        default: q.default === undefined ? null : String(q.default),
        group: parent,
      });
      itemPaths.push(here);
    });
  };
  walk(y.questions as (z.output<typeof question> | GroupInput)[], ['questions'], null);

  const s = y.settings;
  const def: SurveyDefinition = {
    key: s.id,
    title: langText(s.title) ?? { [defaultLanguage]: s.id },
    versionLabel: s.version === undefined ? null : String(s.version),
    defaultLanguage,
    languages: s.languages,
    settings: {
      consentQuestion: s.consent_question ?? true,
      keepAnswers: s.keep_answers ?? false,
      maxAttempts: s.max_attempts ?? 3,
      estimatedMinutes: s.estimated_minutes ?? null,
      expiryHours: s.expiry_hours ?? null,
      reminderHours: s.reminder_hours ?? null,
      intro: langText(s.intro),
      closing: langText(s.closing),
      parameters: s.parameters ?? [],
    },
    items,
    groups,
    choiceLists,
    format: 'yaml',
  };
  const FIELD_KEYS: Record<string, string> = { type: 'choices' };
  const SETTING_KEYS: Record<string, string> = {
    id: 'id', title: 'title', default_language: 'default_language', languages: 'languages', intro: 'intro', closing: 'closing',
    parameters: 'parameters', max_attempts: 'max_attempts', keep_answers: 'keep_answers',
  };
  const locate: Locate = (ref) => {
    if (ref.item !== undefined) {
      const field = ref.field ? FIELD_KEYS[ref.field] ?? ref.field : undefined;
      return lineOf(field ? [...itemPaths[ref.item], field] : itemPaths[ref.item]);
    }
    if (ref.group !== undefined) return lineOf([...(groupPaths.get(ref.group) ?? ['questions']), ref.field === 'name' ? 'group' : ref.field ?? 'group']);
    if (ref.list !== undefined) {
      const base = listPaths.get(ref.list) ?? ['choices', ref.list];
      return lineOf(ref.choice === undefined ? base : [...base, ref.choice, ...(ref.field ? [ref.field] : [])]);
    }
    if (ref.field) return lineOf(['settings', SETTING_KEYS[ref.field] ?? ref.field]);
    return lineOf(['questions']);
  };
  const problems = checkDefinition(def, locate);
  if (s.keep_answers && s.consent_question === false) {
    problems.push({ where: lineOf(['settings', 'keep_answers']), message: 'keep_answers needs consent_question: the person must be told and agree before their messages are kept' });
  }
  if (problems.length) throw new DefinitionError(file, problems);
  return def;
}

function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

interface FlatIssue {
  path: Path;
  message: string;
}

/**
 * zod reports a failed union as one issue holding each branch's issues. For a question or group
 * the branch is known (a `group` key makes it a group), so report that branch's own issues.
 */
function flattenIssues(issues: readonly z.core.$ZodIssue[], root: unknown, base: Path = []): FlatIssue[] {
  const out: FlatIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...(issue.path as Path)];
    if (issue.code === 'invalid_union' && Array.isArray((issue as { errors?: unknown }).errors)) {
      const branches = (issue as unknown as { errors: z.core.$ZodIssue[][] }).errors;
      const value = valueAt(root, path);
      // The branch that got furthest into the value is the one the author meant (a mapping with
      // `group` is a group; a list of choices is the list branch, and so on).
      let pick: z.core.$ZodIssue[] | undefined;
      let bestDepth = -1;
      for (const b of branches) {
        const typeMismatch = b.length === 1 && b[0].path.length === 0 && (b[0].code === 'invalid_type' || b[0].code === 'invalid_union');
        const depth = typeMismatch ? -0.5 : Math.max(0, ...b.map((i) => i.path.length)) + (b.some((i) => i.code === 'unrecognized_keys') ? -0.25 : 0);
        if (depth > bestDepth) {
          bestDepth = depth;
          pick = b;
        }
      }
      if (value && typeof value === 'object' && !Array.isArray(value) && branches.length === 2 && 'group' in (value as object)) pick = branches[1];
      if (pick && pick.length) {
        out.push(...flattenIssues(pick, root, path));
        continue;
      }
      out.push({ path, message: describeUnion(value) });
      continue;
    }
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as unknown as { keys: string[] }).keys;
      for (const k of keys) out.push({ path: [...path, k], message: `"${k}" is not a known key here` });
      continue;
    }
    if (issue.code === 'invalid_type' && valueAt(root, path) === undefined) message = 'is required';
    if ((issue.code as string) === 'invalid_key') message = `"${String(path[path.length - 1])}" is not a language code such as es or en (quote texts that contain a comma)`;
    out.push({ path, message });
  }
  return out;
}

function describeUnion(value: unknown): string {
  if (value === undefined) return 'is required';
  if (value === null) return 'is empty';
  return 'has the wrong form (see surveys/schema.json)';
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

function dedupe(problems: DefinitionProblem[]): DefinitionProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = p.where + '\u0000' + p.message;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
