/**
 * What a segment query can name: the built-in contact attributes, the custom fields that staff
 * defined (table contact_fields), the lists, consent purposes and channels. Loaded once per
 * compilation with two small queries.
 */
import type { Knex } from '../../db/orm.js';
import { toInt } from '../../db/values.js';

export type FieldType = 'text' | 'number' | 'date' | 'choice';

export const CONSENT_PURPOSES = ['updates', 'surveys', 'cash_programme', 'complaint_followup', 'data_sharing'] as const;
export const MEDIA = ['whatsapp', 'sms'] as const;
export const STATUSES = ['active', 'stopped', 'blocked'] as const;

/** How an attribute is stored, which decides the SQL it compiles to. */
export type Attribute =
  | { name: string; kind: 'column'; column: 'name' | 'timezone'; type: 'text'; help: string }
  | { name: string; kind: 'language'; type: 'text'; help: string }
  | { name: string; kind: 'status'; type: 'choice'; choices: readonly string[]; help: string }
  | { name: string; kind: 'timestamp'; column: 'created_at' | 'last_seen_at'; type: 'date'; help: string }
  | { name: string; kind: 'list'; help: string }
  | { name: string; kind: 'consent'; help: string }
  | { name: string; kind: 'channel'; help: string }
  | { name: string; kind: 'custom'; key: string; type: FieldType; choices: string[] | null; label: string; help: string };

export const BUILT_IN: Attribute[] = [
  { name: 'language', kind: 'language', type: 'text', help: 'BCP 47 code; language = "es" also matches es-PE' },
  { name: 'status', kind: 'status', type: 'choice', choices: STATUSES, help: 'active, stopped (said STOP) or blocked' },
  { name: 'timezone', kind: 'column', column: 'timezone', type: 'text', help: 'IANA time zone, such as America/Lima' },
  { name: 'name', kind: 'column', column: 'name', type: 'text', help: 'the contact\'s name' },
  { name: 'created', kind: 'timestamp', column: 'created_at', type: 'date', help: 'when the contact was first recorded' },
  { name: 'last_seen', kind: 'timestamp', column: 'last_seen_at', type: 'date', help: 'their last message to us; last_seen > 30d means within the last 30 days' },
  { name: 'list', kind: 'list', help: 'an active subscription to the list with this key' },
  { name: 'consent', kind: 'consent', help: `current consent granted for a purpose: ${CONSENT_PURPOSES.join(', ')}` },
  { name: 'channel', kind: 'channel', help: 'has an address on whatsapp or sms that has not opted out' },
];

/** Other words people may type for a built-in attribute. */
export const ALIASES: Record<string, string> = { medium: 'channel', lang: 'language', tz: 'timezone', created_at: 'created', last_seen_at: 'last_seen', lists: 'list', purpose: 'consent' };

export interface Catalog {
  attributes: Map<string, Attribute>;
  /** custom fields by key (also reachable through attributes unless shadowed by a built-in). */
  custom: Map<string, Extract<Attribute, { kind: 'custom' }>>;
  /** list key → id */
  lists: Map<string, number>;
}

export interface CustomFieldDef {
  key: string;
  label: string;
  type: FieldType;
  choices: string[] | null;
}

function parseChoices(v: unknown): string[] | null {
  if (v === null || v === undefined) return null;
  const arr = typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
  return Array.isArray(arr) ? arr.map(String) : null;
}

export async function loadCustomFields(knex: Knex): Promise<CustomFieldDef[]> {
  const rows = await knex('contact_fields').select('key', 'label', 'type', 'choices').orderBy('key');
  return rows.map((r: Record<string, unknown>) => ({
    key: String(r.key),
    label: String(r.label),
    type: (['text', 'number', 'date', 'choice'].includes(String(r.type)) ? r.type : 'text') as FieldType,
    choices: parseChoices(r.choices),
  }));
}

export async function loadCatalog(knex: Knex): Promise<Catalog> {
  const [fields, lists] = await Promise.all([loadCustomFields(knex), knex('lists').select('id', 'key')]);
  return buildCatalog(fields, lists.map((l: Record<string, unknown>) => ({ id: toInt(l.id), key: String(l.key) })));
}

export function buildCatalog(fields: CustomFieldDef[], lists: { id: number; key: string }[]): Catalog {
  const attributes = new Map<string, Attribute>();
  const custom = new Map<string, Extract<Attribute, { kind: 'custom' }>>();
  for (const f of fields) {
    const a = { name: f.key, kind: 'custom' as const, key: f.key, type: f.type, choices: f.choices, label: f.label, help: f.label };
    custom.set(f.key, a);
    attributes.set(f.key, a);
  }
  // Built-ins win over a custom field of the same name; that field stays reachable as fields.<key>.
  for (const b of BUILT_IN) attributes.set(b.name, b);
  return { attributes, custom, lists: new Map(lists.map((l) => [l.key, l.id])) };
}
