/**
 * The survey catalog: every definition in surveys/ (*.yaml, *.yml, *.xlsx), loaded, validated
 * and compiled, with the problems of those that are refused. It is read at start-up and again
 * whenever a file in the folder changes (checked by name, size and modification time), so a new
 * or corrected file is picked up without a restart.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { SURVEYS } from '../paths.js';
import { compileSurvey, definitionVersion, DefinitionError, type CompiledSurvey, type DefinitionProblem, type SurveyDefinition } from './definition.js';
import { loadXlsForm } from './xlsform.js';
import { loadYamlSurvey } from './yaml.js';

export const SURVEY_EXTENSIONS = ['.yaml', '.yml', '.xlsx'];

export interface CatalogEntry {
  file: string;
  survey: CompiledSurvey;
}

export interface CatalogProblem {
  file: string;
  problems: DefinitionProblem[];
}

export interface Catalog {
  dir: string;
  surveys: Map<string, CatalogEntry>;
  refused: CatalogProblem[];
  loadedAt: Date;
}

export interface LoadOptions {
  /** Language of plain XLSForm label columns when the form names none. */
  defaultLanguage?: string;
}

/** Loads one definition file; throws DefinitionError naming what is wrong and where. */
export async function loadSurveyFile(path: string, opts: LoadOptions = {}): Promise<SurveyDefinition> {
  const name = path.replace(/^.*[\\/]/, '');
  const ext = extname(path).toLowerCase();
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new DefinitionError(name, [{ where: 'the file', message: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }]);
  }
  if (ext === '.yaml' || ext === '.yml') return loadYamlSurvey(data.toString('utf8'), name);
  if (ext === '.xlsx') return loadXlsForm(data, name, { defaultLanguage: opts.defaultLanguage });
  throw new DefinitionError(name, [{ where: 'the file', message: `has an unknown extension; use ${SURVEY_EXTENSIONS.join(', ')}` }]);
}

export async function loadSurveyText(name: string, data: Buffer, opts: LoadOptions = {}): Promise<SurveyDefinition> {
  const ext = extname(name).toLowerCase();
  if (ext === '.xlsx') return loadXlsForm(data, name, { defaultLanguage: opts.defaultLanguage });
  return loadYamlSurvey(data.toString('utf8'), name);
}

function signature(dir: string): string {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => SURVEY_EXTENSIONS.includes(extname(f).toLowerCase()) && !f.startsWith('.') && !f.startsWith('~$')).sort();
  } catch {
    return '';
  }
  return files
    .map((f) => {
      try {
        const s = statSync(join(dir, f));
        return `${f}:${s.size}:${s.mtimeMs}`;
      } catch {
        return f;
      }
    })
    .join('|');
}

async function build(dir: string, opts: LoadOptions): Promise<Catalog> {
  const surveys = new Map<string, CatalogEntry>();
  const refused: CatalogProblem[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => SURVEY_EXTENSIONS.includes(extname(f).toLowerCase()) && !f.startsWith('.') && !f.startsWith('~$')).sort();
  } catch {
    files = [];
  }
  for (const f of files) {
    try {
      const def = await loadSurveyFile(join(dir, f), opts);
      const other = surveys.get(def.key);
      if (other) {
        refused.push({ file: f, problems: [{ where: 'settings id', message: `the survey id "${def.key}" is already used by ${other.file}` }] });
        continue;
      }
      surveys.set(def.key, { file: f, survey: compileSurvey(def, definitionVersion(def)) });
    } catch (e) {
      if (e instanceof DefinitionError) refused.push({ file: f, problems: e.problems });
      else refused.push({ file: f, problems: [{ where: 'the file', message: (e as Error).message }] });
    }
  }
  return { dir, surveys, refused, loadedAt: new Date() };
}

const cache = new Map<string, { sig: string; catalog: Promise<Catalog> }>();

/** The catalog of a folder (default surveys/), reloaded when its files change. */
export async function getCatalog(dir = SURVEYS, opts: LoadOptions = {}): Promise<Catalog> {
  const key = `${dir}\u0000${opts.defaultLanguage ?? ''}`;
  const sig = signature(dir);
  const hit = cache.get(key);
  if (hit && hit.sig === sig) return hit.catalog;
  const catalog = build(dir, opts);
  cache.set(key, { sig, catalog });
  catalog.catch(() => cache.delete(key));
  return catalog;
}

/** Where the catalog lives and how plain XLSForm labels are read: set once at start-up (tests point it elsewhere). */
let defaults: { dir: string; opts: LoadOptions } = { dir: SURVEYS, opts: {} };
export function configureCatalog(dir: string, opts: LoadOptions = {}): void {
  defaults = { dir, opts };
}
export function catalog(): Promise<Catalog> {
  return getCatalog(defaults.dir, defaults.opts);
}

/** A survey from the catalog by id, or undefined. */
export async function findSurvey(key: string): Promise<CatalogEntry | undefined> {
  return (await catalog()).surveys.get(key);
}
