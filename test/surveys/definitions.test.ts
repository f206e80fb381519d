/**
 * Loading definitions: the public XLSForm samples (each loads, or is refused with sheet, row,
 * column and reason), an XLSForm built here with every supported column, the YAML schema with
 * line numbers, the shipped survey, the published JSON Schema, and content-hash versions.
 */
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ExcelJS from 'exceljs';
import { describe, expect, it } from 'vitest';
import { loadXlsForm } from '../../src/surveys/xlsform.js';
import { loadYamlSurvey, surveyJsonSchema } from '../../src/surveys/yaml.js';
import { loadSurveyFile, getCatalog } from '../../src/surveys/catalog.js';
import { compileSurvey, definitionVersion, DefinitionError, type SurveyDefinition } from '../../src/surveys/definition.js';
import { initialState, step } from '../../src/surveys/engine.js';
import { ROOT } from '../../src/paths.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'xlsform');

async function refusal(p: Promise<unknown>): Promise<DefinitionError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DefinitionError) return e;
    throw e;
  }
  throw new Error('the definition was accepted');
}

const xls = (name: string) => loadXlsForm(readFileSync(join(FIXTURES, name)), name);

describe('public XLSForm samples (pyxform test forms)', () => {
  it('every sample in the folder is covered below', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.xlsx')).sort();
    expect(files).toEqual([...Object.keys(LOADS), ...Object.keys(REFUSED)].sort());
  });

  const LOADS: Record<string, (d: SurveyDefinition) => void> = {
    'choice_filter_test.xlsx': (d) => {
      expect(d.key).toBe('cascading_selects1');
      expect(d.items.map((i) => [i.name, i.type, i.list, i.choiceFilter])).toEqual([
        ['state', 'select_one', 'states', null],
        ['county', 'select_one', 'counties', '${state}=cf'],
        ['city', 'select_one', 'cities', '${county}=cf'],
      ]);
      // allow_choice_duplicates: "king" is in two states.
      expect(d.choiceLists.counties.filter((c) => c.name === 'king')).toHaveLength(2);
    },
    'specify_other.xlsx': (d) => {
      // "select one from sexes or specify other": an "other" choice and a follow-up text question.
      expect(d.items.map((i) => [i.name, i.type, i.relevant])).toEqual([
        ['sex', 'select_one', null],
        ['sex_other', 'text', "selected(${sex}, 'other')"],
      ]);
      expect(d.choiceLists[d.items[0].list!].map((c) => c.name)).toEqual(['male', 'female', 'other']);
      expect(d.languages).toEqual(['en']);
    },
    'text_and_integer.xlsx': (d) => {
      expect(d.items.map((i) => `${i.name}:${i.type}`)).toEqual(['your_name:text', 'your_age:integer']);
      expect(d.items[1].label).toEqual({ en: 'How many years old are you?' });
    },
    'yes_or_no_question.xlsx': (d) => {
      expect(d.items[0]).toMatchObject({ name: 'good_day', type: 'select_one', list: 'yes_or_no' });
    },
  };

  it.each(Object.entries(LOADS))('%s loads', async (file, check) => {
    const def = await xls(file);
    check(def);
    // It runs: the first question is asked.
    const survey = compileSurvey(def);
    const r = step(survey, initialState(survey, new Date(), null), { type: 'start' }, { now: new Date() });
    expect(r.messages.some((m) => m.kind === 'question')).toBe(true);
  });

  /** The first problems, in file order, as a user reads them. */
  const REFUSED: Record<string, string[]> = {
    'bad_calc.xlsx': ['survey sheet, row 2, column calculation (D): the text starting with \' is not closed (at character 22 of "because pyxform doesn\'t know what to do")'],
    'case_insensitivity.xlsx': [
      'SURVEY sheet, row 3, column TYPE (A): "select_one_external c1": choices from external files are not supported; put the choices on the choices sheet',
      'SURVEY sheet, row 4, column TYPE (A): "osm c1": location questions cannot be answered in a text conversation',
      'ENTITIES sheet: entities are not supported',
    ],
    'flat_xlsform_test.xlsx': [
      'survey sheet, row 9, column image (S): media (images, audio, video) are not supported in a text conversation',
      'survey sheet, row 9, column audio (T): media (images, audio, video) are not supported in a text conversation',
    ],
    'group.xlsx': ['survey sheet, row 4, column type (A): "phone number": "phone number" is not supported; use text with a constraint such as regex(., \'^[0-9+ ]+$\')'],
    'loop.xlsx': ['survey sheet, row 3, column type (A): "begin loop over toilet_type": repeats are not supported: a conversation asks each question once'],
    'or_other.xlsx': ['survey sheet, row 3, column choice_filter (D): "yes" is not a column of this choice list (columns: name, pastel); quote text values, e.g. \'yes\' (at character 8 of "pastel=yes")'],
    'pull_data.xlsx': ['survey sheet, row 2, column calculation (D): pulldata() reads external CSV files, which Ayni does not have (at character 1 of "pulldata(\'fruits\', \'name\',\'name\', \'mango\')")'],
    'xlsform_spec_test.xlsx': [
      'survey sheet, row 9, column image (S): media (images, audio, video) are not supported in a text conversation',
    ],
  };

  it.each(Object.entries(REFUSED))('%s is refused with the place and the reason', async (file, first) => {
    const e = await refusal(xls(file));
    const lines = e.problems.map((p) => `${p.where}: ${p.message}`);
    expect(lines.slice(0, first.length)).toEqual(first);
  });

  it('the big spec form lists each unsupported thing once, with its row', async () => {
    const e = await refusal(xls('xlsform_spec_test.xlsx'));
    const lines = e.problems.map((p) => `${p.where}: ${p.message}`);
    expect(lines).toContain('survey sheet, row 15, column type (A): "begin repeat": repeats are not supported: a conversation asks each question once');
    expect(lines).toContain('survey sheet, row 34, column type (A): "geopoint": location questions cannot be answered in a text conversation');
    expect(lines).toContain('survey sheet, row 32, column type (A): "time": time questions are not supported; use text or date');
    expect(lines).toContain('survey sheet, row 48, column type (A): "deviceid": device metadata does not exist in a conversation');
    expect(lines).toContain('choices sheet, row 4, column label (C): the choice "a" has no label');
    // A note that shows a refused field is not reported a second time.
    expect(lines.some((l) => l.includes('${deviceid} is not a question'))).toBe(false);
  });
});

// ------------------------------------------------------------------------------ built here

async function workbook(sheets: Record<string, (string | number | boolean | null)[][]>): Promise<Buffer> {
  const wb = new ExcelJS.Workbook();
  for (const [name, rows] of Object.entries(sheets)) {
    const ws = wb.addWorksheet(name);
    for (const r of rows) ws.addRow(r);
  }
  return Buffer.from(await wb.xlsx.writeBuffer());
}

describe('an XLSForm with every supported column', () => {
  const sheets = {
    survey: [
      ['type', 'name', 'label::Español (es)', 'label::English (en)', 'hint::Español (es)', 'required', 'relevant', 'constraint', 'constraint_message::Español (es)', 'calculation', 'choice_filter', 'default', 'appearance'],
      ['select_one yn', 'consent', '¿Acepta?', 'Do you agree?', null, 'yes', null, null, null, null, null, null, 'minimal'],
      ['begin group', 'household', null, null, null, null, "${consent} = 'si'", null, null, null, null, null, 'field-list'],
      ['integer', 'size', '¿Cuántas personas?', 'How many people?', 'Incluya niños', 'yes', null, '. > 0 and . < 30', 'Entre 1 y 29', null, null, null, null],
      ['calculate', 'big', null, null, null, null, null, null, null, 'if(${size} > 5, 1, 0)', null, null, null],
      ['select_one region', 'region', 'Región', 'Region', null, 'yes', null, null, null, null, null, null, null],
      ['select_one district', 'district', 'Distrito', 'District', null, null, null, null, null, null, 'region = ${region}', null, null],
      ['date', 'arrived', 'Llegada', 'Arrival', null, null, null, ". <= today()", null, null, null, '2026-01-01', null],
      ['end group', null],
      ['note', 'bye', 'Gracias ${size}', 'Thanks ${size}', null, null, null, null, null, null, null, null, null],
    ],
    choices: [
      ['list_name', 'name', 'label::Español (es)', 'label::English (en)', 'region'],
      ['yn', 'si', 'Sí', 'Yes', null],
      ['yn', 'no', 'No', 'No', null],
      ['region', 'lima', 'Lima', 'Lima', null],
      ['region', 'tumbes', 'Tumbes', 'Tumbes', null],
      ['district', 'miraflores', 'Miraflores', 'Miraflores', 'lima'],
      ['district', 'zarumilla', 'Zarumilla', 'Zarumilla', 'tumbes'],
    ],
    settings: [
      ['form_title', 'form_id', 'version', 'default_language', 'max_attempts', 'consent_question'],
      ['Hogar', 'hogar', '3', 'Español (es)', 2, 'no'],
    ],
  };

  it('reads labels per language, groups, expressions and settings', async () => {
    const d = await loadXlsForm(await workbook(sheets), 'hogar.xlsx');
    expect(d).toMatchObject({ key: 'hogar', title: { es: 'Hogar' }, versionLabel: '3', defaultLanguage: 'es', languages: ['es', 'en'], settings: { maxAttempts: 2, consentQuestion: false } });
    expect(d.groups).toEqual([{ name: 'household', label: null, relevant: "${consent} = 'si'", parent: null }]);
    const size = d.items.find((i) => i.name === 'size')!;
    expect(size).toMatchObject({
      type: 'integer', required: 'true', group: 'household', constraint: '. > 0 and . < 30',
      label: { es: '¿Cuántas personas?', en: 'How many people?' }, hint: { es: 'Incluya niños' }, constraintMessage: { es: 'Entre 1 y 29' },
    });
    expect(d.items.find((i) => i.name === 'district')).toMatchObject({ choiceFilter: 'region = ${region}', required: 'false' });
    expect(d.items.find((i) => i.name === 'arrived')).toMatchObject({ default: '2026-01-01' });
    expect(d.choiceLists.district[0].props).toEqual({ region: 'lima' });
  });

  it('runs: group relevance, constraint message, choice filter, calculation, default on SKIP, label with an answer', async () => {
    const survey = compileSurvey(await loadXlsForm(await workbook(sheets), 'hogar.xlsx'));
    const now = new Date('2026-11-22T12:00:00Z');
    let r = step(survey, initialState(survey, now, 'es'), { type: 'start' }, { now });
    const answer = (text: string) => (r = step(survey, r.state, { type: 'answer', text }, { now }));
    answer('1'); // Sí → the group is relevant
    answer('40');
    expect(r.messages[0]).toMatchObject({ kind: 'question', name: 'size', error: 'Entre 1 y 29' });
    answer('7');
    expect(r.state.values).toMatchObject({ size: 7, big: 1 });
    answer('tumbes');
    // Only Tumbes' district is offered.
    expect(r.messages[0]).toMatchObject({ name: 'district', choices: [{ key: 'zarumilla', label: 'Zarumilla' }] });
    answer('1');
    answer('saltar'); // optional date with a default: SKIP records the default
    expect(r.state.values.arrived).toBe('2026-01-01');
    expect(r.messages.find((m) => m.kind === 'note')).toMatchObject({ text: 'Gracias 7' });
    expect(r.state.status).toBe('completed');
  });

  it('refuses an unknown reference with a suggestion, and a bare word in relevant', async () => {
    const bad = structuredClone(sheets);
    bad.survey[3][6] = '${sise} > 0';
    bad.survey[5][6] = 'consent = yes';
    const e = await refusal(loadXlsForm(await workbook(bad), 'bad.xlsx'));
    expect(e.problems.map((p) => `${p.where}: ${p.message}`)).toEqual([
      'survey sheet, row 4, column relevant (G): ${sise} is not a question of this survey (did you mean "size"?)',
      'survey sheet, row 6, column relevant (G): "consent" is not understood: write ${consent} to refer to a question, or \'consent\' for text (at character 1 of "consent = yes")',
    ]);
  });

  it('refuses a workbook without a survey sheet, and a file that is not a workbook', async () => {
    const e1 = await refusal(loadXlsForm(await workbook({ hoja: [['a']] }), 'x.xlsx'));
    expect(e1.problems[0]).toEqual({ where: 'the workbook', message: 'has no "survey" sheet (sheets: hoja)' });
    const e2 = await refusal(loadXlsForm(Buffer.from('not a zip'), 'y.xlsx'));
    expect(e2.problems[0].message).toMatch(/is not a readable .xlsx workbook/);
  });

  it('refuses an unknown language name and an unclosed group', async () => {
    const bad = structuredClone(sheets);
    bad.survey[0][3] = 'label::Klingon';
    bad.survey.splice(8, 1); // end group
    const e = await refusal(loadXlsForm(await workbook(bad), 'bad.xlsx'));
    const lines = e.problems.map((p) => `${p.where}: ${p.message}`);
    expect(lines).toContain('survey sheet, row 1, column label::Klingon (D): "Klingon" is not a language this loader recognises: write the code too, e.g. label::Klingon (xx)');
    expect(lines).toContain('survey sheet, row 3, column type (A): this group is never ended');
  });
});

// -------------------------------------------------------------------------------------- YAML

const YAML_OK = `settings:
  id: mini
  title: { es: Mini, en: Mini }
  default_language: es
  languages: [es, en]
questions:
  - name: q1
    type: select_one
    label: { es: ¿Sí?, en: Yes? }
    choices: yn
choices:
  yn:
    - { name: "yes", label: { es: Sí, en: "Yes" } }
    - { name: "no", label: { es: "No", en: "No" } }
`;

describe('YAML surveys', () => {
  it('loads, with plain strings meaning the default language and extra choice keys as filter columns', () => {
    const d = loadYamlSurvey(YAML_OK.replace('- { name: "no", label: { es: "No", en: "No" } }', '- { name: "no", label: "No", region: lima }'), 'mini.yaml');
    expect(d.choiceLists.yn[1]).toEqual({ name: 'no', label: { es: 'No' }, props: { region: 'lima' } });
    expect(d.settings).toMatchObject({ consentQuestion: true, keepAnswers: false, maxAttempts: 3 });
  });

  it.each([
    ['a typo in a key', YAML_OK.replace('    choices: yn', '    choises: yn'), ['line 10 (questions[0].choises): "choises" is not a known key here']],
    ['an unknown type', YAML_OK.replace('type: select_one', 'type: geopoint'), [/^line 8 \(questions\[0\]\.type\): Invalid option: expected one of "select_one"\|/]],
    ['a missing list', YAML_OK.replace('choices: yn', 'choices: ny'), ['line 10 (questions[0].choices): there is no choice list "ny" (did you mean "yn"?)']],
    ['a bad expression', YAML_OK.replace('    choices: yn', "    choices: yn\n    relevant: ${q1} = = 'x'"), ['line 11 (questions[0].relevant): unexpected "=" (at character 9 of "${q1} = = \'x\'")']],
    ['a text with a comma in a flow mapping', YAML_OK.replace('label: { es: ¿Sí?, en: Yes? }', 'label: { es: Sí, claro, en: Yes }'), ['line 9 (questions[0].label. claro): " claro" is not a language code such as es or en (quote texts that contain a comma)'.replace('. claro', '.claro').replace('" claro"', '"claro"')]],
    ['a missing setting', YAML_OK.replace('  default_language: es\n', ''), ['line 2 (settings.default_language): is required']],
    ['a label in a language the survey does not have', YAML_OK.replace('en: Yes? }', 'en: Yes?, fr: Oui? }'), ['line 9 (questions[0].label): text in fr, which is not one of the survey\'s languages (es, en)']],
    ['broken YAML', 'settings: [', [/^line 1: /]],
    ['keep_answers without the consent question', YAML_OK.replace('  languages: [es, en]', '  languages: [es, en]\n  keep_answers: true\n  consent_question: false'), ['line 6 (settings.keep_answers): keep_answers needs consent_question: the person must be told and agree before their messages are kept']],
  ])('refuses %s with its line', (_, text, want) => {
    let e: DefinitionError | undefined;
    try {
      loadYamlSurvey(text, 'mini.yaml');
    } catch (err) {
      e = err as DefinitionError;
    }
    expect(e).toBeInstanceOf(DefinitionError);
    const lines = e!.problems.map((p) => `${p.where}: ${p.message}`);
    expect(lines).toHaveLength(want.length);
    want.forEach((w, i) => (typeof w === 'string' ? expect(lines[i]).toBe(w) : expect(lines[i]).toMatch(w)));
  });

  it('the shipped needs assessment loads, in Spanish and English, with groups and calculations', async () => {
    const d = await loadSurveyFile(join(ROOT, 'surveys', 'needs-assessment.yaml'));
    expect(d.key).toBe('needs-assessment');
    expect(d.languages).toEqual(['es', 'en']);
    const names = d.items.map((i) => i.name);
    for (const n of ['phone_access', 'preferred_channel', 'complaint_channel', 'language', 'format', 'topics', 'trusted_sources', 'feels_informed', 'rumours', 'best_time', 'age', 'age_group', 'gender', 'wg_seeing', 'wg_communication', 'disability', 'nationality', 'location']) {
      expect(names).toContain(n);
    }
    for (const it of d.items.filter((i) => i.label)) expect(Object.keys(it.label!).sort(), it.name).toEqual(['en', 'es']);
  });

  it('the surveys folder loads with nothing refused', async () => {
    const c = await getCatalog(join(ROOT, 'surveys'));
    expect(c.refused).toEqual([]);
    expect([...c.surveys.keys()]).toContain('needs-assessment');
  });

  it('surveys/schema.json is the current JSON Schema (UPDATE_SCHEMA=1 rewrites it)', () => {
    const file = join(ROOT, 'surveys', 'schema.json');
    const want = JSON.stringify(surveyJsonSchema(), null, 2) + '\n';
    if (process.env.UPDATE_SCHEMA === '1') writeFileSync(file, want);
    expect(readFileSync(file, 'utf8'), 'surveys/schema.json is out of date: run UPDATE_SCHEMA=1 npx vitest run test/surveys/definitions.test.ts').toBe(want);
    const schema = JSON.parse(want);
    expect(schema.properties.questions.items.anyOf).toHaveLength(2);
    expect(schema.properties.settings.required).toEqual(['id', 'title', 'default_language', 'languages']);
  });
});

describe('versions', () => {
  it('are the content hash: same content, same version; any change, a new one', () => {
    const a = loadYamlSurvey(YAML_OK, 'a.yaml');
    const b = loadYamlSurvey(YAML_OK.replace('settings:', '# a comment\nsettings:'), 'b.yaml');
    const c = loadYamlSurvey(YAML_OK.replace('¿Sí?', '¿Sí o no?'), 'c.yaml');
    expect(definitionVersion(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(definitionVersion(b)).toBe(definitionVersion(a));
    expect(definitionVersion(c)).not.toBe(definitionVersion(a));
  });
});
