/** `ayni surveys validate` and `preview`: what a form's author sees in a terminal. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../src/paths.js';
import { loadSurveyFile } from '../../src/surveys/catalog.js';
import { compileSurvey } from '../../src/surveys/definition.js';
import { preview } from '../../src/surveys/cli.js';

const run = promisify(execFile);
const ayni = (...args: string[]) =>
  run(process.execPath, [join(ROOT, 'bin', 'ayni.js'), ...args], { cwd: ROOT, env: { ...process.env, AYNI_FROM_SOURCE: '1', LOG_LEVEL: 'silent' } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('ayni surveys', () => {
  it('validate: valid files say so; a refused one lists its problems and the command fails', async () => {
    const r = await ayni('surveys', 'validate', 'surveys/needs-assessment.yaml', 'test/fixtures/xlsform/pull_data.xlsx');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^surveys\/needs-assessment\.yaml: valid — needs-assessment, version [0-9a-f]{16}, 21 questions, languages es, en$/m);
    expect(r.stderr).toContain('test/fixtures/xlsform/pull_data.xlsx: refused, 1 problem:\n  survey sheet, row 2, column calculation (D): pulldata() reads external CSV files');
  }, 60_000);

  it('preview: the conversation as a respondent reads it, with SMS segments', async () => {
    const survey = compileSurvey(await loadSurveyFile(join(ROOT, 'surveys', 'needs-assessment.yaml')));
    const lines = preview(survey, { lang: 'es', channel: 'sms', programme: 'Ayni', answers: ['1', '9', '2'] });
    expect(lines).toEqual([
      expect.stringMatching(/^< Ayni: Encuesta sobre lo que necesita saber\..*Responda 1-2 \[GSM-7, 2 segments\]$/s),
      '> 1',
      expect.stringMatching(/^< ¿Tiene celular propio\?.*\[GSM-7, 1 segment\]$/s),
      '> 9',
      expect.stringMatching(/^< Responda con una cifra del 1 al 4\.\n  ¿Tiene celular propio\?/),
      '> 2',
      expect.stringMatching(/^< ¿Por qué medio prefiere/),
    ]);
    // Without answers it walks the whole survey to the thank-you, on WhatsApp showing buttons and lists.
    const all = preview(survey, { lang: 'en', channel: 'whatsapp', programme: 'Ayni' });
    expect(all[all.length - 1]).toMatch(/^< Thank you!.*\[text\]$/);
    expect(all.some((l) => l.endsWith('[list]'))).toBe(true);
    expect(all.some((l) => l.endsWith('[buttons]'))).toBe(true);
  });
});
