/**
 * XLSForm (.xlsx) surveys, read with exceljs and interpreted by Ayni: sheets `survey`, `choices`
 * and `settings` (names and headers in any case). What a conversation cannot do — repeats,
 * media, locations, device metadata, external data, unknown functions — is refused with the
 * sheet, row and column, so that a form's author knows exactly what to change.
 *
 * Supported types: select_one / select_multiple LIST (also "select one from LIST", "select all
 * that apply from LIST", "… or_other"), integer, decimal, text, note, calculate, date,
 * begin group / end group, and the start / end / today metadata. Columns: type, name,
 * label[::Language (code)], hint, required, required_message, relevant, constraint,
 * constraint_message, calculation, choice_filter, default (appearance and authors' notes are
 * ignored). Settings: form_title, form_id, version, default_language, allow_choice_duplicates,
 * and Ayni's consent_question, keep_answers, max_attempts, estimated_minutes, expiry_hours,
 * reminder_hours.
 */
import ExcelJS from 'exceljs';
import {
  checkDefinition,
  DefinitionError,
  KEY_RE,
  type ChoiceDef,
  type DefinitionProblem,
  type GroupDef,
  type ItemDef,
  type ItemType,
  type LangText,
  type Locate,
  type SurveyDefinition,
} from './definition.js';

export interface XlsFormOptions {
  /** The language of plain `label` columns when the settings sheet names none (default 'en'). */
  defaultLanguage?: string;
}

/** Common language names (as XLSForm authors write them) to codes. */
const LANGUAGE_NAMES: Record<string, string> = {
  english: 'en', ingles: 'en', anglais: 'en',
  spanish: 'es', espanol: 'es', castellano: 'es', espagnol: 'es', espanhol: 'es',
  french: 'fr', francais: 'fr', frances: 'fr',
  portuguese: 'pt', portugues: 'pt', portugais: 'pt',
  arabic: 'ar', chinese: 'zh', swahili: 'sw', kiswahili: 'sw', hindi: 'hi', russian: 'ru', ukrainian: 'uk',
  german: 'de', deutsch: 'de', italian: 'it', quechua: 'qu', aymara: 'ay', haitian: 'ht', 'haitian creole': 'ht',
  amharic: 'am', somali: 'so', bengali: 'bn', bangla: 'bn', urdu: 'ur', hausa: 'ha', yoruba: 'yo', igbo: 'ig',
  turkish: 'tr', persian: 'fa', farsi: 'fa', dari: 'prs', pashto: 'ps', burmese: 'my', nepali: 'ne', tigrinya: 'ti',
  kurdish: 'ku', indonesian: 'id', tagalog: 'tl', vietnamese: 'vi', polish: 'pl', romanian: 'ro', lingala: 'ln',
  kinyarwanda: 'rw', wayuunaiki: 'guc', guarani: 'gn', wolof: 'wo', fulfulde: 'ff', bambara: 'bm', sango: 'sg',
};

const OTHER_LABEL: Record<string, string> = { en: 'Other', es: 'Otro', fr: 'Autre', pt: 'Outro' };
const SPECIFY_OTHER: Record<string, string> = { en: 'Specify other.', es: 'Especifique otro.', fr: 'Précisez autre.', pt: 'Especifique outro.' };

const TEXT_FIELDS = new Set(['label', 'hint', 'constraint_message', 'required_message']);
const MEDIA_FIELDS = new Set(['image', 'audio', 'video', 'big-image', 'media']);
/** Columns about how a form looks on a device, or notes for its authors: meaningless in a conversation. */
const IGNORED_COLUMNS = new Set(['appearance', 'rows', 'notes', 'note', 'comment', 'comments', 'guidance_hint', 'instance_name']);
const HEADER_ALIASES: Record<string, string> = {
  'list name': 'list_name', listname: 'list_name',
  'constraint message': 'constraint_message', constraintmsg: 'constraint_message', 'jr:constraintmsg': 'constraint_message', constraint_msg: 'constraint_message',
  'required message': 'required_message', requiredmsg: 'required_message', 'jr:requiredmsg': 'required_message', required_msg: 'required_message',
  'choice filter': 'choice_filter', 'bind::relevant': 'relevant', 'bind::constraint': 'constraint', 'bind::calculate': 'calculation',
};

const UNSUPPORTED_TYPES: [RegExp, string][] = [
  [/^begin[ _](repeat|loop)\b/, 'repeats are not supported: a conversation asks each question once'],
  [/^end[ _](repeat|loop)$/, 'repeats are not supported'],
  [/^(geopoint|geotrace|geoshape|start-geopoint|osm)\b/, 'location questions cannot be answered in a text conversation'],
  [/^(image|audio|video|file|background-audio|signature|barcode)\b/, 'media and barcode questions cannot be answered in a text conversation'],
  [/^(time|datetime)$/, 'time questions are not supported; use text or date'],
  [/^(range|rank)\b/, 'range and rank questions are not supported; use select_one or select_multiple'],
  [/^(select_one_from_file|select_multiple_from_file|select_one_external|select_multiple_external)\b/, 'choices from external files are not supported; put the choices on the choices sheet'],
  [/^(xml-external|csv-external|entity)\b/, 'external data is not supported'],
  [/^(deviceid|subscriberid|simserial|phonenumber|username|email|audit|uri:\S+)$/, 'device metadata does not exist in a conversation'],
  [/^(acknowledge|trigger|hidden)$/, 'this question type is not supported; use select_one with one choice, or a note'],
  [/^phone number$/, '"phone number" is not supported; use text with a constraint such as regex(., \'^[0-9+ ]+$\')'],
];

interface Cell {
  value: string;
  column: string;
  letter: string;
}

interface SheetRow {
  row: number;
  cells: Map<string, Cell>;
}

interface SheetData {
  name: string;
  headers: { key: string; raw: string; letter: string }[];
  rows: SheetRow[];
}

function cellText(v: ExcelJS.CellValue): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString().slice(0, 10);
  const o = v as unknown as Record<string, unknown>;
  if (Array.isArray(o.richText)) return (o.richText as { text: string }[]).map((r) => r.text).join('');
  if ('result' in o && o.result !== undefined && o.result !== null) {
    const r = o.result;
    if (r instanceof Date) return r.toISOString().slice(0, 10);
    if (typeof r === 'object') return '';
    return String(r);
  }
  if (typeof o.formula === 'string') return `${o.formula}`;
  if (typeof o.text === 'string') return o.text;
  return '';
}

function normaliseHeader(raw: string): string {
  let h = raw.trim().toLowerCase().replace(/\s+/g, ' ');
  // "label:English (en)" → "label::english (en)"
  h = h.replace(/^([a-z_-]+)\s*:\s*(?!:)/, '$1::').replace(/^([a-z_-]+)\s*::\s*/, '$1::');
  return HEADER_ALIASES[h] ?? h;
}

function readSheet(ws: ExcelJS.Worksheet): SheetData {
  const headerRow = ws.getRow(1);
  const headers: SheetData['headers'] = [];
  const byCol = new Map<number, { key: string; raw: string; letter: string }>();
  headerRow.eachCell({ includeEmpty: false }, (cell, col) => {
    const raw = cellText(cell.value).trim();
    if (!raw) return;
    // Keep the original case of the language part ("label::Español (es)").
    const h = { key: normaliseHeader(raw), raw, letter: ws.getColumn(col).letter };
    headers.push(h);
    byCol.set(col, h);
  });
  const rows: SheetRow[] = [];
  ws.eachRow({ includeEmpty: false }, (row, n) => {
    if (n === 1) return;
    const cells = new Map<string, Cell>();
    row.eachCell({ includeEmpty: false }, (cell, col) => {
      const h = byCol.get(col);
      const value = cellText(cell.value).trim();
      if (!value) return;
      if (!h) {
        cells.set(`#${col}`, { value, column: `(no header)`, letter: ws.getColumn(col).letter });
        return;
      }
      cells.set(h.raw, { value, column: h.raw, letter: h.letter });
    });
    if (cells.size) rows.push({ row: n, cells });
  });
  return { name: ws.name, headers, rows };
}

/** A header's field and, for text columns, its language part as written. */
function splitHeader(key: string): { field: string; lang: string | null } {
  const i = key.indexOf('::');
  if (i < 0) return { field: key, lang: null };
  return { field: key.slice(0, i), lang: key.slice(i + 2) };
}

function languageCode(raw: string): string | null {
  const s = raw.trim();
  const paren = /\(\s*([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\s*\)\s*$/.exec(s);
  if (paren) return paren[1].replace(/^[A-Za-z]+/, (m) => m.toLowerCase());
  if (/^[A-Za-z]{2,3}$/.test(s)) return s.toLowerCase();
  const name = s.normalize('NFD').replace(/\p{M}+/gu, '').toLowerCase().trim();
  return LANGUAGE_NAMES[name] ?? null;
}

function truthy(v: string): boolean | null {
  const s = v.trim().toLowerCase();
  if (['yes', 'true', 'true()', '1', 'y'].includes(s)) return true;
  if (['no', 'false', 'false()', '0', 'n', ''].includes(s)) return false;
  return null;
}

export async function loadXlsForm(data: Buffer | ArrayBuffer | Uint8Array, file: string, opts: XlsFormOptions = {}): Promise<SurveyDefinition> {
  const wb = new ExcelJS.Workbook();
  try {
    await wb.xlsx.load(data as unknown as ArrayBuffer);
  } catch (e) {
    throw new DefinitionError(file, [{ where: 'the file', message: `is not a readable .xlsx workbook (${(e as Error).message})` }]);
  }
  const problems: DefinitionProblem[] = [];
  const add = (where: string, message: string) => problems.push({ where, message });
  const sheets = new Map<string, ExcelJS.Worksheet>();
  wb.eachSheet((ws) => sheets.set(ws.name.trim().toLowerCase(), ws));
  const surveyWs = sheets.get('survey');
  if (!surveyWs) throw new DefinitionError(file, [{ where: 'the workbook', message: `has no "survey" sheet (sheets: ${[...sheets.keys()].join(', ') || 'none'})` }]);
  for (const [name, ws] of sheets) {
    if (name === 'entities' && ws.actualRowCount > 1) add(`${ws.name} sheet`, 'entities are not supported');
  }
  const survey = readSheet(surveyWs);
  const choicesWs = sheets.get('choices');
  const choicesSheet = choicesWs ? readSheet(choicesWs) : null;
  const settingsWs = sheets.get('settings');
  const settingsSheet = settingsWs ? readSheet(settingsWs) : null;

  const at = (sheet: string, row: number, cell?: { column: string; letter: string } | string) =>
    `${sheet} sheet, row ${row}${cell === undefined ? '' : typeof cell === 'string' ? `, column ${cell}` : `, column ${cell.column} (${cell.letter})`}`;

  // ----------------------------------------------------------------------------- settings
  const settings = new Map<string, { value: string; where: string }>();
  if (settingsSheet && settingsSheet.rows.length) {
    const first = settingsSheet.rows[0];
    for (const h of settingsSheet.headers) {
      const c = first.cells.get(h.raw);
      if (c) settings.set(h.key, { value: c.value, where: at(settingsSheet.name, first.row, c) });
    }
  }
  const setting = (k: string) => settings.get(k)?.value;

  // ---------------------------------------------------------------------------- languages
  const languages: string[] = [];
  const addLang = (code: string) => {
    if (!languages.includes(code)) languages.push(code);
  };
  let defaultLanguage: string | null = null;
  const dl = settings.get('default_language');
  if (dl && dl.value.toLowerCase() !== 'default') {
    defaultLanguage = languageCode(dl.value);
    if (!defaultLanguage) add(dl.where, `"${dl.value}" is not a language this loader recognises: write it as Name (code), e.g. Español (es)`);
  }
  const headerLang = new Map<string, string | null>();
  const scanHeaders = (sheet: SheetData) => {
    for (const h of sheet.headers) {
      const { field, lang } = splitHeader(h.key);
      if (lang === null || !TEXT_FIELDS.has(field)) continue;
      const rawLang = h.raw.slice(h.raw.search(/:/)).replace(/^:+\s*/, '');
      const code = languageCode(rawLang);
      headerLang.set(h.raw, code);
      if (!code) add(`${sheet.name} sheet, row 1, column ${h.raw} (${h.letter})`, `"${rawLang}" is not a language this loader recognises: write the code too, e.g. ${field}::${rawLang} (xx)`);
      else addLang(code);
    }
  };
  scanHeaders(survey);
  if (choicesSheet) scanHeaders(choicesSheet);
  const hasPlain = [survey, choicesSheet].some((s) => s?.headers.some((h) => TEXT_FIELDS.has(h.key)));
  if (!defaultLanguage) defaultLanguage = hasPlain || languages.length === 0 ? opts.defaultLanguage ?? 'en' : languages[0];
  if (hasPlain || languages.length === 0) addLang(defaultLanguage);
  if (!languages.includes(defaultLanguage)) languages.unshift(defaultLanguage);

  /** Reads the text columns of one field in a row (label, label::X…) into a LangText. */
  const textOf = (sheet: SheetData, row: SheetRow, field: string): LangText | null => {
    const out: LangText = {};
    for (const h of sheet.headers) {
      const { field: f, lang } = splitHeader(h.key);
      if (f !== field) continue;
      const c = row.cells.get(h.raw);
      if (!c) continue;
      const code = lang === null ? defaultLanguage! : headerLang.get(h.raw);
      if (!code) continue;
      if (lang === null && out[code] !== undefined) continue; // a language column wins over the plain one
      out[code] = c.value;
    }
    return Object.keys(out).length ? out : null;
  };

  /** Refuses any non-empty cell in a column this loader does not know. */
  const checkColumns = (sheet: SheetData, row: SheetRow, known: (field: string, lang: string | null) => boolean) => {
    for (const [key, c] of row.cells) {
      if (key.startsWith('#')) {
        add(at(sheet.name, row.row, c), `a value in a column without a header`);
        continue;
      }
      const h = sheet.headers.find((x) => x.raw === key)!;
      const { field, lang } = splitHeader(h.key);
      if (known(field, lang)) continue;
      if (IGNORED_COLUMNS.has(field) || field.startsWith('guidance_hint')) continue;
      if (MEDIA_FIELDS.has(field)) add(at(sheet.name, row.row, c), 'media (images, audio, video) are not supported in a text conversation');
      else if (field === 'read_only') {
        if (truthy(c.value) !== false) add(at(sheet.name, row.row, c), 'read-only questions are not supported');
      } else if (field === 'repeat_count') add(at(sheet.name, row.row, c), 'repeats are not supported');
      else add(at(sheet.name, row.row, c), `the column "${h.raw}" is not supported`);
    }
  };

  // ------------------------------------------------------------------------------ choices
  const allowDuplicates = truthy(setting('allow_choice_duplicates') ?? '') === true;
  const choiceLists: Record<string, ChoiceDef[]> = {};
  const choiceRows: Record<string, { row: number; cells: Map<string, Cell> }[]> = {};
  if (choicesSheet) {
    const keyOf = (f: string) => choicesSheet.headers.find((h) => h.key === f);
    if (!keyOf('list_name') && choicesSheet.rows.length) add(`${choicesSheet.name} sheet, row 1`, 'there is no list_name column');
    for (const row of choicesSheet.rows) {
      const get = (f: string) => {
        const h = keyOf(f);
        return h ? row.cells.get(h.raw) : undefined;
      };
      const list = get('list_name')?.value;
      checkColumns(choicesSheet, row, (field, lang) => field === 'list_name' || field === 'name' || (field === 'label' && true) || (lang === null && !MEDIA_FIELDS.has(field) && !TEXT_FIELDS.has(field) && field !== 'read_only'));
      if (!list) {
        add(at(choicesSheet.name, row.row, keyOf('list_name') ? { column: keyOf('list_name')!.raw, letter: keyOf('list_name')!.letter } : 'list_name'), 'the choice has no list_name');
        continue;
      }
      const name = get('name')?.value ?? '';
      const props: Record<string, string> = {};
      for (const h of choicesSheet.headers) {
        const { field, lang } = splitHeader(h.key);
        if (lang !== null || ['list_name', 'name', 'label', 'hint'].includes(field) || MEDIA_FIELDS.has(field)) continue;
        const c = row.cells.get(h.raw);
        props[h.raw.trim()] = c ? c.value : '';
      }
      const choices = (choiceLists[list] ??= []);
      const rows = (choiceRows[list] ??= []);
      if (name && choices.some((c) => c.name === name) && !allowDuplicates) {
        const h = keyOf('name')!;
        add(at(choicesSheet.name, row.row, { column: h.raw, letter: h.letter }), `the choice name "${name}" appears twice in the list "${list}" (set allow_choice_duplicates to yes on the settings sheet if that is intended)`);
      }
      choices.push({ name, label: textOf(choicesSheet, row, 'label') ?? {}, props });
      rows.push(row);
    }
  }

  // ------------------------------------------------------------------------------- survey
  const items: ItemDef[] = [];
  const itemRows: SheetRow[] = [];
  const groups: GroupDef[] = [];
  const groupRows = new Map<string, SheetRow>();
  const stack: { kind: 'group' | 'repeat'; name: string | null; row: number }[] = [];
  const col = (f: string) => survey.headers.find((h) => h.key === f);
  if (!col('type')) add(`${survey.name} sheet, row 1`, 'there is no type column');
  if (!col('name')) add(`${survey.name} sheet, row 1`, 'there is no name column');
  const SURVEY_FIELDS = new Set(['type', 'name', 'label', 'hint', 'required', 'required_message', 'relevant', 'constraint', 'constraint_message', 'calculation', 'choice_filter', 'default']);
  const derivedLists = new Map<string, string>();
  const refused = new Set<string>();

  for (const row of survey.rows) {
    const cell = (f: string) => {
      const h = col(f);
      return h ? row.cells.get(h.raw) : undefined;
    };
    const val = (f: string) => cell(f)?.value ?? null;
    const where = (f: string) => {
      const h = col(f);
      return at(survey.name, row.row, h ? { column: h.raw, letter: h.letter } : f);
    };
    checkColumns(survey, row, (field, lang) => SURVEY_FIELDS.has(field) && (lang === null || TEXT_FIELDS.has(field)));
    const typeRaw = (val('type') ?? '').replace(/\s+/g, ' ').trim();
    const type = typeRaw.toLowerCase();
    const name = val('name') ?? '';
    if (!type) {
      add(where('type'), 'the row has no type');
      continue;
    }
    const unsupported = UNSUPPORTED_TYPES.find(([re]) => re.test(type));
    if (unsupported) {
      if (name) refused.add(name);
      add(where('type'), `"${typeRaw}": ${unsupported[1]}`);
      if (/^begin[ _](repeat|loop)\b/.test(type)) stack.push({ kind: 'repeat', name, row: row.row });
      if (/^end[ _](repeat|loop)$/.test(type)) {
        const top = stack.pop();
        if (top?.kind !== 'repeat') add(where('type'), 'end repeat without a matching begin repeat');
      }
      continue;
    }
    const parent = [...stack].reverse().find((s) => s.kind === 'group')?.name ?? null;
    if (/^begin[ _]group$/.test(type)) {
      if (!name) add(where('name'), 'the group has no name');
      const gname = name || `group_row_${row.row}`;
      groups.push({ name: gname, label: textOf(survey, row, 'label'), relevant: val('relevant'), parent });
      groupRows.set(gname, row);
      stack.push({ kind: 'group', name: gname, row: row.row });
      for (const f of ['constraint', 'calculation', 'choice_filter', 'default']) if (val(f)) add(where(f), `a group cannot have a ${f}`);
      continue;
    }
    if (/^end[ _]group$/.test(type)) {
      const top = stack.pop();
      if (!top) add(where('type'), 'end group without a matching begin group');
      else if (top.kind !== 'group') add(where('type'), `end group where the repeat begun on row ${top.row} should end`);
      continue;
    }
    let itemType: ItemType | null = null;
    let list: string | null = null;
    let orOther = false;
    const sel = /^(select_one|select one|select1|select_multiple|select multiple|select all that apply|select_all_that_apply)(?: from)? (\S+)( or_other| or specify other)?$/i.exec(typeRaw);
    if (sel) {
      itemType = /one|1/i.test(sel[1]) ? 'select_one' : 'select_multiple';
      list = sel[2];
      orOther = Boolean(sel[3]);
    } else if (/^(select_one|select_multiple)$/.test(type)) {
      add(where('type'), `${type} needs a choice list name, e.g. "${type} yes_no"`);
      continue;
    } else {
      const simple: Record<string, ItemType> = {
        integer: 'integer', int: 'integer', decimal: 'decimal', text: 'text', string: 'text', note: 'note',
        calculate: 'calculate', date: 'date', start: 'start', end: 'end', today: 'today',
      };
      itemType = simple[type] ?? null;
      if (!itemType) {
        add(where('type'), `the type "${typeRaw}" is not supported (supported: select_one, select_multiple, integer, decimal, text, note, calculate, date, begin group, end group, start, end, today)`);
        continue;
      }
    }
    if (stack.some((s) => s.kind === 'repeat')) {
      if (name) refused.add(name); // already refused with the repeat
      continue;
    }
    if (!name) {
      add(where('name'), 'the row has no name');
      continue;
    }
    const requiredRaw = val('required');
    let required = 'false';
    if (requiredRaw !== null) {
      const b = truthy(requiredRaw);
      required = b === null ? requiredRaw : String(b);
    }
    if (list && orOther) {
      const derived = derivedLists.get(list) ?? `${list}__or_other`;
      derivedLists.set(list, derived);
      list = derived;
    }
    items.push({
      name,
      type: itemType,
      label: textOf(survey, row, 'label'),
      hint: textOf(survey, row, 'hint'),
      required,
      requiredMessage: textOf(survey, row, 'required_message'),
      relevant: val('relevant'),
      constraint: val('constraint'),
      constraintMessage: textOf(survey, row, 'constraint_message'),
      calculation: val('calculation'),
      list,
      choiceFilter: val('choice_filter'),
      default: val('default'),
      group: parent,
    });
    itemRows.push(row);
    if (orOther) {
      const label: LangText = {};
      for (const l of languages) label[l] = SPECIFY_OTHER[l.split('-')[0]] ?? SPECIFY_OTHER.en;
      items.push({
        name: `${name}_other`, type: 'text', label, hint: null, required: 'false', requiredMessage: null,
        relevant: `selected(\${${name}}, 'other')`, constraint: null, constraintMessage: null, calculation: null,
        list: null, choiceFilter: null, default: null, group: parent,
      });
      itemRows.push(row);
    }
  }
  for (const open of stack) add(at(survey.name, open.row, col('type') ? { column: col('type')!.raw, letter: col('type')!.letter } : 'type'), `this ${open.kind} is never ended`);
  for (const [base, derived] of derivedLists) {
    const source = choiceLists[base];
    if (!source) continue;
    const label: LangText = {};
    for (const l of languages) label[l] = OTHER_LABEL[l.split('-')[0]] ?? OTHER_LABEL.en;
    choiceLists[derived] = [...source, { name: 'other', label, props: {} }];
    choiceRows[derived] = choiceRows[base];
  }

  // ----------------------------------------------------------------------------- settings
  const intSetting = (k: string, min: number, max: number): number | null => {
    const s = settings.get(k);
    if (!s) return null;
    const n = Number(s.value);
    if (!Number.isInteger(n) || n < min || n > max) {
      add(s.where, `must be a whole number from ${min} to ${max}`);
      return null;
    }
    return n;
  };
  const boolSetting = (k: string, fallback: boolean): boolean => {
    const s = settings.get(k);
    if (!s) return fallback;
    const b = truthy(s.value);
    if (b === null) {
      add(s.where, 'must be yes or no');
      return fallback;
    }
    return b;
  };
  const stem = file.replace(/^.*[\\/]/, '').replace(/\.[^.]+$/, '');
  const formId = setting('form_id') ?? stem;
  const key = KEY_RE.test(formId) ? formId : slug(formId) || slug(stem) || 'survey';
  const title = setting('form_title') ?? formId;
  const consentQuestion = boolSetting('consent_question', true);
  const keepAnswers = boolSetting('keep_answers', false);
  if (keepAnswers && !consentQuestion) add(settings.get('keep_answers')!.where, 'keep_answers needs consent_question: the person must be told and agree before their messages are kept');

  const def: SurveyDefinition = {
    key,
    title: { [defaultLanguage]: title },
    versionLabel: setting('version') ?? null,
    defaultLanguage,
    languages,
    settings: {
      consentQuestion,
      keepAnswers,
      maxAttempts: intSetting('max_attempts', 1, 10) ?? 3,
      estimatedMinutes: intSetting('estimated_minutes', 1, 120),
      expiryHours: intSetting('expiry_hours', 1, 24 * 60),
      reminderHours: intSetting('reminder_hours', 1, 24 * 30),
      intro: null,
      closing: null,
      parameters: [],
    },
    items,
    groups,
    choiceLists,
    format: 'xlsform',
  };

  const FIELD_COLUMN: Record<string, string> = { type: 'type' };
  const locate: Locate = (ref) => {
    if (ref.item !== undefined) {
      const row = itemRows[ref.item];
      const field = ref.field ? FIELD_COLUMN[ref.field] ?? ref.field : undefined;
      if (!field) return at(survey.name, row.row);
      const h = survey.headers.find((x) => splitHeader(x.key).field === field && row.cells.has(x.raw)) ?? survey.headers.find((x) => splitHeader(x.key).field === field);
      return at(survey.name, row.row, h ? { column: h.raw, letter: h.letter } : field);
    }
    if (ref.group !== undefined) {
      const row = groupRows.get(ref.group);
      if (!row) return `${survey.name} sheet`;
      const h = survey.headers.find((x) => splitHeader(x.key).field === (ref.field ?? 'name'));
      return at(survey.name, row.row, h ? { column: h.raw, letter: h.letter } : ref.field ?? 'name');
    }
    if (ref.list !== undefined && choicesSheet) {
      const rows = choiceRows[ref.list];
      const row = ref.choice !== undefined && rows ? rows[ref.choice] : undefined;
      if (!row) return `${choicesSheet.name} sheet, list ${ref.list}`;
      const h = choicesSheet.headers.find((x) => splitHeader(x.key).field === (ref.field ?? 'name'));
      return at(choicesSheet.name, row.row, h ? { column: h.raw, letter: h.letter } : ref.field ?? 'name');
    }
    if (ref.field) {
      const settingKey = ref.field === 'id' ? 'form_id' : ref.field === 'title' ? 'form_title' : ref.field;
      return settings.get(settingKey)?.where ?? `settings sheet, column ${settingKey}`;
    }
    return `${survey.name} sheet`;
  };
  problems.push(...checkDefinition(def, locate, { refused }));
  if (problems.length) throw new DefinitionError(file, sortProblems(problems));
  return def;
}

function slug(s: string): string {
  return s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
}

/** Problems in sheet order, then row order, so that the first one listed is the first in the file. */
function sortProblems(problems: DefinitionProblem[]): DefinitionProblem[] {
  const order = (p: DefinitionProblem) => {
    const m = /^(.*?) sheet, row (\d+)/i.exec(p.where);
    const sheet = m ? m[1].toLowerCase() : p.where.toLowerCase();
    const s = sheet === 'survey' ? 0 : sheet === 'choices' ? 1 : sheet === 'settings' ? 2 : 3;
    return [s, m ? Number(m[2]) : 0] as const;
  };
  const seen = new Set<string>();
  return problems
    .map((p, i) => ({ p, i, o: order(p) }))
    .sort((a, b) => a.o[0] - b.o[0] || a.o[1] - b.o[1] || a.i - b.i)
    .map((x) => x.p)
    .filter((p) => {
      const k = p.where + '\u0000' + p.message;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
}
