/**
 * `ayni surveys …`:
 *   validate FILE...                        check definitions (exit 1 if any is refused, one problem a line)
 *   preview FILE [--lang es] [--channel sms|whatsapp] [--answers "1;2;30"]
 *                                           print the conversation a respondent would see
 *   list                                    the surveys in the surveys folder, and the files refused
 *   schema                                  print the JSON Schema of Ayni's YAML format
 * None of them needs the database.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { loadConfig } from '../config.js';
import { measureSms } from '../channels/sms.js';
import { SURVEYS } from '../paths.js';
import { getCatalog, loadSurveyFile } from './catalog.js';
import { compileSurvey, DefinitionError, textIn, type CompiledSurvey } from './definition.js';
import { initialState, step, type EngineMessage, type StepResult } from './engine.js';
import { plainText, renderMessages } from './render.js';
import { surveyJsonSchema } from './yaml.js';

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

function settings(): { language: string; programme: string } {
  try {
    const c = loadConfig();
    return { language: c.DEFAULT_LANGUAGE, programme: c.PROGRAMME_NAME };
  } catch {
    return { language: 'es', programme: 'Ayni' };
  }
}

/** Answers a script tries when none are given: the first option, a plausible number, a date, some text. */
function candidates(m: EngineMessage | undefined, today: string): string[] {
  if (!m || m.kind !== 'question') return ['1'];
  switch (m.qtype) {
    case 'integer':
      return ['30', '1', '5', '18', '0', '100', 'skip'];
    case 'decimal':
      return ['2.5', '1', '0', '100', 'skip'];
    case 'date':
      return [today, 'skip'];
    case 'text':
      return ['…', 'skip'];
    default:
      return ['1', 'skip'];
  }
}

export function preview(survey: CompiledSurvey, opts: { lang: string; channel: 'sms' | 'whatsapp'; answers?: string[]; programme: string; now?: Date }): string[] {
  const now = opts.now ?? new Date();
  const lines: string[] = [];
  const show = (r: StepResult) => {
    for (const o of renderMessages(r.messages, { medium: opts.channel, programme: opts.programme })) {
      const text = plainText(o.content);
      const meta = opts.channel === 'sms' ? (() => { const m = measureSms(text); return ` [${m.encoding}, ${m.segments} segment${m.segments === 1 ? '' : 's'}]`; })() : ` [${o.content.type}]`;
      lines.push(`< ${text.replace(/\n/g, '\n  ')}${meta}`);
    }
  };
  let r = step(survey, initialState(survey, now, opts.lang), { type: 'start', language: opts.lang }, { now });
  show(r);
  const given = opts.answers ? [...opts.answers] : null;
  for (let i = 0; i < 300 && r.state.status === 'active'; i++) {
    const asked = r.messages.filter((m) => m.kind === 'question').pop();
    let next: StepResult | null = null;
    let said = '';
    if (given) {
      if (!given.length) break;
      said = given.shift()!;
      next = step(survey, r.state, { type: 'answer', text: said }, { now });
    } else {
      for (const c of candidates(asked, now.toISOString().slice(0, 10))) {
        const attempt = step(survey, r.state, { type: 'answer', text: c }, { now });
        if (attempt.accepted) {
          said = c;
          next = attempt;
          break;
        }
      }
      if (!next) break;
    }
    lines.push(`> ${said}`);
    r = next;
    show(r);
  }
  return lines;
}

export function registerSurveyCommands(program: Command): void {
  const surveys = program.command('surveys').description('survey definitions (YAML and XLSForm)');

  surveys
    .command('validate')
    .description('check survey definition files; exit 1 if any is refused')
    .argument('<files...>', '.yaml, .yml or .xlsx files')
    .action(async (files: string[]) => {
      const { language } = settings();
      let bad = 0;
      for (const f of files) {
        try {
          const def = await loadSurveyFile(f, { defaultLanguage: language });
          const s = compileSurvey(def);
          out(`${f}: valid — ${def.key}, version ${s.version}, ${s.askable} questions, languages ${def.languages.join(', ')}`);
        } catch (e) {
          if (!(e instanceof DefinitionError)) throw e;
          bad++;
          err(`${f}: refused, ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'}:`);
          for (const p of e.problems) err(`  ${p.where}: ${p.message}`);
        }
      }
      if (bad) process.exitCode = 1;
    });

  surveys
    .command('preview')
    .description('print the conversation a respondent would see (answers: the first option, or --answers)')
    .argument('<file>', 'a survey definition file')
    .option('--lang <code>', 'the respondent’s language')
    .addOption(new Option('--channel <channel>', 'how it is sent').choices(['sms', 'whatsapp']).default('sms'))
    .option('--answers <list>', 'what the respondent sends, separated by ";" (e.g. "1;2;1 3;30")')
    .action(async (file: string, o: { lang?: string; channel: 'sms' | 'whatsapp'; answers?: string }) => {
      const { language, programme } = settings();
      try {
        const survey = compileSurvey(await loadSurveyFile(file, { defaultLanguage: language }));
        const lang = o.lang ?? survey.def.defaultLanguage;
        if (!survey.def.languages.includes(lang)) err(`note: the survey has no ${lang}; it speaks ${survey.def.languages.join(', ')}`);
        out(`${textIn(survey.def.title, lang, survey.def.defaultLanguage)} — ${o.channel}, ${lang}\n`);
        for (const l of preview(survey, { lang, channel: o.channel, answers: o.answers?.split(';').map((a) => a.trim()), programme })) out(l);
      } catch (e) {
        if (!(e instanceof DefinitionError)) throw e;
        err(e.message);
        process.exitCode = 1;
      }
    });

  surveys
    .command('list')
    .description('the surveys in the surveys folder, and the files refused')
    .action(async () => {
      const c = await getCatalog(SURVEYS, { defaultLanguage: settings().language });
      for (const e of c.surveys.values()) out(`${e.survey.def.key.padEnd(28)} ${e.survey.version}  ${String(e.survey.askable).padStart(3)} questions  ${e.file}`);
      for (const r of c.refused) {
        err(`${r.file}: refused`);
        for (const p of r.problems) err(`  ${p.where}: ${p.message}`);
      }
      if (c.refused.length) process.exitCode = 1;
    });

  surveys
    .command('schema')
    .description("print the JSON Schema of Ayni's YAML survey format (surveys/schema.json)")
    .action(() => {
      out(JSON.stringify(surveyJsonSchema(), null, 2));
    });
}
