/**
 * Custom contact fields that staff define (region, gender, age group, household size…): a key, a
 * label and a type — text, number, date (YYYY-MM-DD) or choice (one of a fixed list). Values live in
 * `contacts.fields` as JSON and are checked against the definitions: a bad value is refused with
 * an error that names the field.
 */
import { z } from 'zod';
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';

export const FIELD_TYPES = ['text', 'number', 'date', 'choice'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

export interface FieldDefinition {
  id: number;
  key: string;
  label: string;
  type: FieldType;
  choices: string[] | null;
  createdAt: string;
}

export type FieldValue = string | number;

export const fieldKey = z
  .string()
  .trim()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, { message: 'must start with a lower-case letter and use only a-z, 0-9 and _ (at most 64)' });

/** Keys the segment language and templates use for a contact's own columns: no custom field may take them. */
const RESERVED_KEYS = new Set(['id', 'name', 'language', 'timezone', 'status', 'phone', 'address', 'channel', 'list', 'consent', 'last_seen', 'created', 'fields']);

export const newFieldSchema = z
  .object({
    key: fieldKey.refine((k) => !RESERVED_KEYS.has(k), { message: 'is a built-in contact attribute; choose another key' }),
    label: z.string().trim().min(1).max(200),
    type: z.enum(FIELD_TYPES),
    choices: z.array(z.string().trim().min(1).max(100)).max(200).optional(),
  })
  .superRefine((f, ctx) => {
    if (f.type === 'choice') {
      if (!f.choices || f.choices.length === 0) ctx.addIssue({ code: 'custom', path: ['choices'], message: 'a choice field needs at least one choice' });
      else {
        const seen = new Set<string>();
        for (const c of f.choices) {
          if (seen.has(c.toLowerCase())) ctx.addIssue({ code: 'custom', path: ['choices'], message: `"${c}" is listed twice` });
          seen.add(c.toLowerCase());
        }
      }
    } else if (f.choices && f.choices.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['choices'], message: 'only a choice field has choices' });
    }
  });
export type NewField = z.input<typeof newFieldSchema>;

export const updateFieldSchema = z.object({
  label: z.string().trim().min(1).max(200).optional(),
  choices: z.array(z.string().trim().min(1).max(100)).min(1).max(200).optional(),
});

function readField(r: Record<string, unknown>): FieldDefinition {
  const choices = r.choices === null || r.choices === undefined ? null : typeof r.choices === 'string' ? (JSON.parse(r.choices) as string[]) : (r.choices as string[]);
  return { id: toInt(r.id), key: String(r.key), label: String(r.label), type: r.type as FieldType, choices, createdAt: toDate(r.created_at).toISOString() };
}

export async function listFields(knex: Knex): Promise<FieldDefinition[]> {
  return (await knex('contact_fields').orderBy('key')).map(readField);
}

export async function fieldDefinitions(knex: Knex): Promise<Map<string, FieldDefinition>> {
  return new Map((await listFields(knex)).map((f) => [f.key, f]));
}

export async function createField(knex: Knex, input: NewField): Promise<FieldDefinition> {
  const f = newFieldSchema.parse(input);
  if (await knex('contact_fields').where('key', f.key).first('id')) {
    throw new HttpError(409, 'conflict', 'A contact field with this key already exists', { key: 'already in use' });
  }
  const [row] = await knex('contact_fields')
    .insert({ key: f.key, label: f.label, type: f.type, choices: f.type === 'choice' ? JSON.stringify(f.choices) : null, created_at: new Date() })
    .returning('id');
  const id = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  return readField(await knex('contact_fields').where('id', id).first());
}

/**
 * Changes a field's label or its choices. A choice still used by some contact cannot be removed
 * (their value would no longer be valid): the error says how many contacts use it.
 */
export async function updateField(knex: Knex, id: number, input: z.input<typeof updateFieldSchema>): Promise<FieldDefinition> {
  const data = updateFieldSchema.parse(input);
  const current = await knex('contact_fields').where('id', id).first();
  if (!current) throw new HttpError(404, 'not_found', 'No such contact field');
  const field = readField(current);
  const patch: Record<string, unknown> = {};
  if (data.label !== undefined) patch.label = data.label;
  if (data.choices !== undefined) {
    if (field.type !== 'choice') throw new HttpError(400, 'validation_failed', 'The request is not valid', { choices: 'only a choice field has choices' });
    const removed = (field.choices ?? []).filter((c) => !data.choices!.includes(c));
    for (const c of removed) {
      const used = await countContactsWithValue(knex, field.key, c);
      if (used > 0) throw new HttpError(409, 'conflict', 'A choice in use cannot be removed', { choices: `"${c}" is the value of ${used} contact(s)` });
    }
    patch.choices = JSON.stringify(data.choices);
  }
  if (Object.keys(patch).length) await knex('contact_fields').where('id', id).update(patch);
  return readField(await knex('contact_fields').where('id', id).first());
}

/** Deletes a definition; refused while any contact still has a value for it. */
export async function deleteField(knex: Knex, id: number): Promise<void> {
  const current = await knex('contact_fields').where('id', id).first();
  if (!current) throw new HttpError(404, 'not_found', 'No such contact field');
  const used = await countContactsWithValue(knex, String(current.key));
  if (used > 0) throw new HttpError(409, 'conflict', 'This field still holds values', { key: `${used} contact(s) have a value for "${current.key}"` });
  await knex('contact_fields').where('id', id).delete();
}

/** How many contacts hold a value for a field (optionally a given value). Reads the JSON in the application: definitions change rarely. */
async function countContactsWithValue(knex: Knex, key: string, value?: string): Promise<number> {
  let n = 0;
  let after = 0;
  for (;;) {
    const rows = await knex('contacts').whereNotNull('fields').where('id', '>', after).orderBy('id').limit(5000).select('id', 'fields');
    if (rows.length === 0) return n;
    for (const r of rows) {
      const f = parseFields(r.fields);
      if (key in f && (value === undefined || f[key] === value)) n++;
    }
    after = toInt(rows[rows.length - 1].id);
  }
}

export function parseFields(v: unknown): Record<string, FieldValue> {
  if (v === null || v === undefined || v === '') return {};
  return (typeof v === 'string' ? JSON.parse(v) : v) as Record<string, FieldValue>;
}

/**
 * Checks values against the definitions and returns them in their stored form (numbers as numbers,
 * dates as YYYY-MM-DD, choices spelled as defined). `null` or '' removes a value. Errors are
 * {"fields.<key>": "why"}; `prefix` changes "fields" (e.g. for a row of an import).
 */
export function validateFieldValues(
  defs: Map<string, FieldDefinition>,
  input: Record<string, unknown>,
  prefix = 'fields',
): { ok: true; values: Record<string, FieldValue | null> } | { ok: false; errors: Record<string, string> } {
  const values: Record<string, FieldValue | null> = {};
  const errors: Record<string, string> = {};
  for (const [key, raw] of Object.entries(input)) {
    const path = `${prefix}.${key}`;
    const def = defs.get(key);
    if (!def) {
      errors[path] = `there is no contact field "${key}"${defs.size ? `; the fields are ${[...defs.keys()].join(', ')}` : '; define it under Contact fields first'}`;
      continue;
    }
    if (raw === null || raw === undefined || (typeof raw === 'string' && raw.trim() === '')) {
      values[key] = null;
      continue;
    }
    const r = checkValue(def, raw);
    if (r.ok) values[key] = r.value;
    else errors[path] = `${def.label}: ${r.reason}`;
  }
  return Object.keys(errors).length ? { ok: false, errors } : { ok: true, values };
}

export function checkValue(def: FieldDefinition, raw: unknown): { ok: true; value: FieldValue } | { ok: false; reason: string } {
  switch (def.type) {
    case 'text': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return { ok: false, reason: 'must be text' };
      const s = String(raw).trim();
      if (s.length > 500) return { ok: false, reason: 'must be at most 500 characters' };
      return { ok: true, value: s };
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isFinite(n)) return { ok: false, reason: `"${String(raw).slice(0, 40)}" is not a number` };
      return { ok: true, value: n };
    }
    case 'date': {
      const s = String(raw).trim();
      const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
      const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : null;
      if (!m || !d || d.getUTCMonth() !== Number(m[2]) - 1 || d.getUTCDate() !== Number(m[3])) {
        return { ok: false, reason: `"${s.slice(0, 40)}" is not a date written YYYY-MM-DD` };
      }
      return { ok: true, value: s };
    }
    case 'choice': {
      const s = String(raw).trim();
      const match = (def.choices ?? []).find((c) => c.toLowerCase() === s.toLowerCase());
      if (!match) return { ok: false, reason: `"${s.slice(0, 40)}" is not one of ${(def.choices ?? []).join(', ')}` };
      return { ok: true, value: match };
    }
  }
}
