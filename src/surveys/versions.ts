/**
 * Survey versions in the database: the definition snapshot of every version a run or session
 * used, keyed by (survey, content hash). A session always continues with the version it started
 * with, whatever happens to the file afterwards.
 */
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { notFound } from '../http/errors.js';
import { catalog, type CatalogEntry } from './catalog.js';
import { compileSurvey, textIn, type CompiledSurvey, type SurveyDefinition } from './definition.js';

/** JSON columns come back as text on SQLite and as objects on PostgreSQL. */
export function readJson<T>(v: unknown): T | null {
  if (v === null || v === undefined) return null;
  return (typeof v === 'string' ? JSON.parse(v) : v) as T;
}

/** The dialect of a Knex instance. */
export function isPostgres(knex: Knex): boolean {
  return (knex as unknown as { client: { dialect?: string } }).client.dialect === 'postgresql';
}

/** A bound value usable in a SELECT list of INSERT … SELECT (PostgreSQL needs its type). */
export function lit(knex: Knex, value: unknown, pgType: 'integer' | 'text' | 'boolean' | 'timestamptz' | 'jsonb' | 'smallint' | 'double precision'): Knex.Raw {
  if (isPostgres(knex)) return knex.raw(`CAST(? AS ${pgType})`, [value as Knex.Value]);
  return knex.raw('?', [(typeof value === 'boolean' ? (value ? 1 : 0) : value) as Knex.Value]);
}

const compiled = new Map<number, CompiledSurvey>();

/** The id of this version of a survey, stored if new. */
export async function ensureVersion(knex: Knex, entry: CatalogEntry): Promise<number> {
  const { survey } = entry;
  const found = await knex('survey_versions').where({ survey_key: survey.def.key, version: survey.version }).first('id');
  if (found) return toInt(found.id);
  await knex('survey_versions')
    .insert({
      survey_key: survey.def.key,
      version: survey.version,
      title: textIn(survey.def.title, survey.def.defaultLanguage, survey.def.defaultLanguage).slice(0, 300),
      format: survey.def.format,
      file_name: entry.file,
      definition: JSON.stringify(survey.def),
      created_at: new Date(),
    })
    .onConflict(['survey_key', 'version'])
    .ignore();
  const row = await knex('survey_versions').where({ survey_key: survey.def.key, version: survey.version }).first('id');
  const id = toInt(row.id);
  compiled.set(id, survey);
  return id;
}

/** A stored version, compiled (cached per process). */
export async function loadVersion(knex: Knex, id: number): Promise<CompiledSurvey> {
  const hit = compiled.get(id);
  if (hit) return hit;
  const row = await knex('survey_versions').where('id', id).first('definition', 'version');
  if (!row) throw notFound(`There is no survey version ${id}`);
  const def = readJson<SurveyDefinition>(row.definition)!;
  const survey = compileSurvey(def, String(row.version));
  compiled.set(id, survey);
  return survey;
}

/** The survey by id from the catalog, with its stored version id. Throws 404 when unknown. */
export async function currentSurvey(knex: Knex, key: string): Promise<{ entry: CatalogEntry; versionId: number }> {
  const entry = (await catalog()).surveys.get(key);
  if (!entry) throw notFound(`There is no survey "${key}" in the surveys folder (or it was refused: see the survey list)`);
  return { entry, versionId: await ensureVersion(knex, entry) };
}

export interface VersionInfo {
  id: number;
  version: string;
  title: string;
  format: string;
  fileName: string | null;
  createdAt: string;
}

export async function versionsOf(knex: Knex, key: string): Promise<VersionInfo[]> {
  const rows = await knex('survey_versions').where('survey_key', key).orderBy('id', 'desc').select('id', 'version', 'title', 'format', 'file_name', 'created_at');
  return rows.map((r: Record<string, unknown>) => ({
    id: toInt(r.id),
    version: String(r.version),
    title: String(r.title),
    format: String(r.format),
    fileName: (r.file_name as string | null) ?? null,
    createdAt: toDate(r.created_at).toISOString(),
  }));
}

/** The definition to label results with: the catalog's when the survey is there, else the newest stored. */
export async function labelsSurvey(knex: Knex, key: string): Promise<CompiledSurvey | null> {
  const entry = (await catalog()).surveys.get(key);
  if (entry) return entry.survey;
  const row = await knex('survey_versions').where('survey_key', key).orderBy('id', 'desc').first('id');
  return row ? loadVersion(knex, toInt(row.id)) : null;
}
