/**
 * From a segment AST to conditions on a Knex query over `contacts as c`.
 *
 * Every name is checked against the catalog (unknown ones are refused with the nearest known
 * name), every operator against the attribute's type, and every value is bound as a parameter —
 * JSON paths included. The SQL text comes only from the constant fragments below.
 *
 * Semantics (see docs in README): a condition on a value that is not set is false, and `not`
 * and `!=` are its exact complement, so `not last_seen > 30d` includes people never seen and
 * `region != "Lima"` includes people with no region. Negations are pushed down to the
 * conditions (De Morgan) so that each negated condition can say "is null or not …" itself.
 */
import type { Knex } from '../../db/orm.js';
import { SegmentError, nearest } from './errors.js';
import { ALIASES, CONSENT_PURPOSES, MEDIA, type Attribute, type Catalog } from './catalog.js';
import { parseSegment, type CompareOp, type FieldRef, type Node, type Value } from './parser.js';
import { languageTag } from '../contacts.js';

export type Dialect = 'sqlite' | 'postgresql';

export function dialectOf(knex: Knex): Dialect {
  return (knex as unknown as { client: { dialect?: string } }).client.dialect === 'postgresql' ? 'postgresql' : 'sqlite';
}

/** A scalar SQL expression with its bindings. */
interface Expr {
  sql: string;
  bindings: unknown[];
}

type Scalar = string | number | Date;

/** A condition, checked and with its values converted to what the database compares. */
type Atom =
  | { t: 'cmp'; expr: Expr; op: CompareOp; value: Scalar }
  | { t: 'range'; expr: Expr; from: Date; to: Date } // a calendar day on a timestamp
  | { t: 'in'; expr: Expr; values: Scalar[] }
  | { t: 'lang'; values: string[] } // language with prefix matching
  | { t: 'contains'; expr: Expr; value: string }
  | { t: 'set'; expr: Expr; text: boolean }
  | { t: 'member'; kind: 'list' | 'consent' | 'channel'; values: (string | number)[] | null };

type Checked =
  | { type: 'all' }
  | { type: 'and' | 'or'; children: Checked[] }
  | { type: 'not'; child: Checked }
  | { type: 'atom'; atom: Atom; negated: boolean };

export interface CompileOptions {
  dialect: Dialect;
  /** "now" for durations such as 30d (default: the current time). */
  now?: Date;
}

export interface CompiledSegment {
  /** The query text as given. */
  text: string;
  /** Adds the segment's conditions to a query builder over `contacts as c`. */
  apply<T extends Knex.QueryBuilder>(qb: T): T;
  /** The attribute names the query uses. */
  attributes: string[];
}

const OPS_SQL: Record<CompareOp, string> = { '=': '=', '!=': '<>', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };
const DAY = 86_400_000;
const KEY_SAFE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

/** Parses and checks query text against the catalog; throws SegmentError with a position. */
export function compileSegment(text: string, catalog: Catalog, opts: CompileOptions): CompiledSegment {
  const ast = parseSegment(text);
  const now = opts.now ?? new Date();
  const used = new Set<string>();
  const checked = check(ast, catalog, opts.dialect, now, used);
  return {
    text,
    attributes: [...used],
    apply: <T extends Knex.QueryBuilder>(qb: T) => {
      applyNode(qb, checked, false, opts.dialect);
      return qb;
    },
  };
}

// ------------------------------------------------------------------------------------ checking

function resolve(field: FieldRef, catalog: Catalog): Attribute {
  if (field.custom) {
    const a = catalog.custom.get(field.name);
    if (a) return a;
    const s = nearest(field.name, catalog.custom.keys());
    throw new SegmentError('unknown_field', `there is no custom field "${field.name}"${s ? `; did you mean "fields.${s}"?` : ''}`, field.pos, s ? `fields.${s}` : undefined);
  }
  const a = catalog.attributes.get(field.name) ?? catalog.attributes.get(ALIASES[field.name.toLowerCase()] ?? '') ?? catalog.attributes.get(field.name.toLowerCase());
  if (a) return a;
  const s = nearest(field.name, catalog.attributes.keys());
  const known = [...catalog.attributes.keys()];
  throw new SegmentError(
    'unknown_field',
    `unknown field "${field.name}"${s ? `; did you mean "${s}"?` : `; known fields are ${known.join(', ')}`}`,
    field.pos,
    s,
  );
}

function typeName(a: Attribute): string {
  switch (a.kind) {
    case 'list':
      return 'a list';
    case 'consent':
      return 'a consent purpose';
    case 'channel':
      return 'a channel';
    case 'timestamp':
      return 'a date';
    default:
      return a.type === 'number' ? 'a number' : a.type === 'date' ? 'a date' : a.type === 'choice' ? 'a choice' : 'text';
  }
}

function jsonText(key: string, dialect: Dialect): Expr {
  return dialect === 'postgresql'
    ? { sql: '(?? ->> ?::text)', bindings: ['c.fields', key] }
    : { sql: 'cast(json_extract(??, ?) as text)', bindings: ['c.fields', `$."${key}"`] };
}

function jsonNumber(key: string, dialect: Dialect): Expr {
  return dialect === 'postgresql'
    ? { sql: "(case when jsonb_typeof(?? -> ?::text) = 'number' then (?? ->> ?::text)::numeric end)", bindings: ['c.fields', key, 'c.fields', key] }
    : { sql: "(case when json_type(??, ?) in ('integer', 'real') then json_extract(??, ?) end)", bindings: ['c.fields', `$."${key}"`, 'c.fields', `$."${key}"`] };
}

const column = (name: string): Expr => ({ sql: '??', bindings: [`c.${name}`] });

function isRealDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

const isoDay = (d: Date) => d.toISOString().slice(0, 10);

function check(node: Node, catalog: Catalog, dialect: Dialect, now: Date, used: Set<string>): Checked {
  switch (node.type) {
    case 'all':
      return node;
    case 'and':
    case 'or':
      return { type: node.type, children: node.children.map((c) => check(c, catalog, dialect, now, used)) };
    case 'not':
      return { type: 'not', child: check(node.child, catalog, dialect, now, used) };
    default: {
      const attr = resolve(node.field, catalog);
      used.add(attr.name);
      return checkCondition(node, attr, catalog, dialect, now);
    }
  }
}

function checkCondition(node: Exclude<Node, { type: 'all' | 'and' | 'or' | 'not' }>, a: Attribute, catalog: Catalog, dialect: Dialect, now: Date): Checked {
  const atom = (x: Atom, negated = false): Checked => ({ type: 'atom', atom: x, negated });
  const opError = (msg: string, pos = node.field.pos): never => {
    throw new SegmentError('operator', msg, pos);
  };
  const fieldName = node.field.custom ? `fields.${node.field.name}` : a.name;

  // ---- membership: list, consent, channel
  if (a.kind === 'list' || a.kind === 'consent' || a.kind === 'channel') {
    const member = (v: Value): string | number => {
      if (v.kind !== 'string') {
        throw new SegmentError('type', `${fieldName} takes ${typeName(a)} name in quotes, such as ${example(a, catalog)}`, v.pos);
      }
      if (a.kind === 'list') {
        const id = catalog.lists.get(v.value);
        if (id !== undefined) return id;
        const s = nearest(v.value, catalog.lists.keys());
        throw new SegmentError('unknown_value', `there is no list with the key "${v.value}"${s ? `; did you mean "${s}"?` : ''}`, v.pos, s);
      }
      const allowed: readonly string[] = a.kind === 'consent' ? CONSENT_PURPOSES : MEDIA;
      const value = v.value.toLowerCase();
      if (allowed.includes(value)) return value;
      const s = nearest(v.value, allowed);
      throw new SegmentError('unknown_value', `"${v.value}" is not a ${a.kind === 'consent' ? 'consent purpose' : 'channel'} (${allowed.join(', ')})${s ? `; did you mean "${s}"?` : ''}`, v.pos, s);
    };
    switch (node.type) {
      case 'compare':
        if (node.op !== '=' && node.op !== '!=') opError(`${fieldName} can only be compared with = or != (or use in, is set)`, node.opPos);
        return atom({ t: 'member', kind: a.kind, values: [member(node.value)] }, node.op === '!=');
      case 'in':
        return atom({ t: 'member', kind: a.kind, values: [...new Set(node.values.map(member))] }, node.negated);
      case 'isSet':
        return atom({ t: 'member', kind: a.kind, values: null }, node.negated);
      case 'contains':
        return opError(`contains works on text fields; ${fieldName} is ${typeName(a)}: use = or in`);
    }
  }

  // ---- language: canonical BCP 47, "es" also matches "es-PE"
  if (a.kind === 'language') {
    const lang = (v: Value): string => {
      if (v.kind !== 'string') throw new SegmentError('type', `language takes a language code in quotes, such as "es"`, v.pos);
      // Spelled as contacts store it: "es", "pt-BR".
      const parsed = languageTag.safeParse(v.value);
      if (!parsed.success) throw new SegmentError('unknown_value', `"${v.value}" is not a language code such as "es", "en" or "pt-BR"`, v.pos);
      return parsed.data;
    };
    switch (node.type) {
      case 'compare':
        if (node.op !== '=' && node.op !== '!=') opError('language can only be compared with = or != (or use in, is set)', node.opPos);
        return atom({ t: 'lang', values: [lang(node.value)] }, node.op === '!=');
      case 'in':
        return atom({ t: 'lang', values: [...new Set(node.values.map(lang))] }, node.negated);
      case 'isSet':
        return atom({ t: 'set', expr: column('language'), text: true }, node.negated);
      case 'contains':
        return opError('contains works on text fields; use language = "es" (which also matches es-PE) or in');
    }
  }

  // ---- built-in timestamps: created, last_seen
  if (a.kind === 'timestamp') {
    const expr = column(a.column);
    if (node.type === 'isSet') return atom({ t: 'set', expr, text: false }, node.negated);
    if (node.type === 'contains') return opError(`contains works on text fields; ${a.name} is a date: use < or >`);
    if (node.type === 'in') return opError(`${a.name} is a date: use <, <=, >, >= or = with a date or a duration such as 30d`);
    const v = node.value;
    if (v.kind === 'duration') {
      if (node.op === '=' || node.op === '!=') opError(`${node.op} with a duration means nothing: write ${a.name} > ${v.text} for "within the last ${v.text}" or ${a.name} < ${v.text} for "longer ago than ${v.text}"`, node.opPos);
      return atom({ t: 'cmp', expr, op: node.op, value: new Date(now.getTime() - v.ms) });
    }
    const text = v.kind === 'date' || v.kind === 'string' ? v.value : null;
    if (text !== null && isRealDate(text)) {
      const day = new Date(`${text}T00:00:00.000Z`);
      const next = new Date(day.getTime() + DAY);
      switch (node.op) {
        case '=':
          return atom({ t: 'range', expr, from: day, to: next });
        case '!=':
          return atom({ t: 'range', expr, from: day, to: next }, true);
        case '<':
          return atom({ t: 'cmp', expr, op: '<', value: day });
        case '<=':
          return atom({ t: 'cmp', expr, op: '<', value: next });
        case '>':
          return atom({ t: 'cmp', expr, op: '>=', value: next });
        case '>=':
          return atom({ t: 'cmp', expr, op: '>=', value: day });
      }
    }
    if (text !== null && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(text) && !Number.isNaN(Date.parse(text))) {
      if (node.op === '=' || node.op === '!=') opError(`= with an exact time rarely matches: use a date such as "${text.slice(0, 10)}", or < and >`, node.opPos);
      return atom({ t: 'cmp', expr, op: node.op, value: new Date(text) });
    }
    throw new SegmentError('type', `${a.name} is a date: compare it with a date (2024-05-31), a time with its zone ("2024-05-31T14:00Z") or a duration such as 30d`, v.pos);
  }

  // ---- status and custom fields, name, timezone: scalar values
  let expr: Expr;
  let type: 'text' | 'number' | 'date' | 'choice';
  let choices: readonly string[] | null = null;
  if (a.kind === 'status') {
    expr = column('status');
    type = 'choice';
    choices = a.choices;
  } else if (a.kind === 'column') {
    expr = column(a.column);
    type = 'text';
  } else {
    if (!KEY_SAFE.test(a.key)) throw new SegmentError('unknown_field', `the custom field "${a.key}" has a key that segments cannot use`, node.field.pos);
    type = a.type;
    choices = a.type === 'choice' ? a.choices : null;
    expr = type === 'number' ? jsonNumber(a.key, dialect) : jsonText(a.key, dialect);
  }

  const convert = (v: Value): Scalar => {
    switch (type) {
      case 'number':
        if (v.kind === 'number') return v.value;
        throw new SegmentError('type', `${fieldName} is a number: write the value without quotes, such as ${fieldName} >= 4`, v.pos);
      case 'date':
        if (v.kind === 'duration') return isoDay(new Date(now.getTime() - v.ms));
        if ((v.kind === 'date' || v.kind === 'string') && isRealDate(v.value)) return v.value;
        throw new SegmentError('type', `${fieldName} is a date: compare it with a date such as 2024-05-31 or a duration such as 30d`, v.pos);
      case 'choice': {
        if (v.kind !== 'string') throw new SegmentError('type', `${fieldName} is a choice: put the value in quotes, such as ${fieldName} = "${choices?.[0] ?? 'value'}"`, v.pos);
        if (!choices || choices.length === 0) return v.value;
        const exact = choices.find((c) => c === v.value) ?? choices.find((c) => c.toLowerCase() === v.value.toLowerCase());
        if (exact !== undefined) return exact;
        const s = nearest(v.value, choices);
        throw new SegmentError('unknown_value', `"${v.value}" is not one of the choices of ${fieldName} (${choices.join(', ')})${s ? `; did you mean "${s}"?` : ''}`, v.pos, s);
      }
      default:
        if (v.kind === 'string') return v.value;
        throw new SegmentError('type', `${fieldName} is text: put the value in quotes, such as ${fieldName} = "${v.kind === 'duration' ? v.text : v.kind === 'date' ? v.value : String(v.value)}"`, v.pos);
    }
  };

  switch (node.type) {
    case 'isSet':
      return atom({ t: 'set', expr, text: type !== 'number' }, node.negated);
    case 'contains': {
      if (type !== 'text') opError(`contains works on text fields; ${fieldName} is ${type === 'choice' ? 'a choice: use = or in' : type === 'number' ? 'a number' : 'a date'}`);
      if (node.value.kind !== 'string') throw new SegmentError('type', 'contains takes text in quotes', node.value.pos);
      if (node.value.value === '') throw new SegmentError('type', 'contains needs some text to look for', node.value.pos);
      return atom({ t: 'contains', expr, value: node.value.value }, node.negated);
    }
    case 'in':
      return atom({ t: 'in', expr, values: [...new Set(node.values.map(convert))] }, node.negated);
    case 'compare': {
      if (node.op !== '=' && node.op !== '!=' && (type === 'text' || type === 'choice')) {
        opError(`${node.op} needs a number or a date; ${fieldName} is ${type === 'choice' ? 'a choice' : 'text'}: use =, !=, in or contains`, node.opPos);
      }
      const value = convert(node.value);
      return node.op === '!=' ? atom({ t: 'cmp', expr, op: '=', value }, true) : atom({ t: 'cmp', expr, op: node.op, value });
    }
  }
}

function example(a: Attribute, catalog: Catalog): string {
  if (a.kind === 'list') return `"${catalog.lists.keys().next().value ?? 'migrants'}"`;
  if (a.kind === 'consent') return '"surveys"';
  return '"whatsapp"';
}

// ------------------------------------------------------------------------------------ SQL

function applyNode(qb: Knex.QueryBuilder, node: Checked, negated: boolean, dialect: Dialect): void {
  switch (node.type) {
    case 'all':
      if (negated) qb.whereRaw('1 = 0');
      return;
    case 'not':
      applyNode(qb, node.child, !negated, dialect);
      return;
    case 'and':
    case 'or': {
      // not (a and b) = not a or not b; not (a or b) = not a and not b
      const conjunction = (node.type === 'and') !== negated;
      qb.where(function (this: Knex.QueryBuilder) {
        for (const child of node.children) {
          const add = function (this: Knex.QueryBuilder) {
            applyNode(this, child, negated, dialect);
          };
          if (conjunction) this.where(add as never);
          else this.orWhere(add as never);
        }
      });
      return;
    }
    case 'atom':
      applyAtom(qb, node.atom, node.negated !== negated, dialect);
      return;
  }
}

function applyAtom(qb: Knex.QueryBuilder, a: Atom, negated: boolean, dialect: Dialect): void {
  if (a.t === 'member') {
    const table = a.kind === 'list' ? 'subscriptions' : a.kind === 'consent' ? 'consent_state' : 'contact_addresses';
    const filter = (b: Knex.QueryBuilder, prefix: string) => {
      switch (a.kind) {
        case 'list':
          b.where(`${prefix}status`, 'active');
          if (a.values) b.whereIn(`${prefix}list_id`, a.values);
          return;
        case 'consent':
          b.where(`${prefix}granted`, true);
          if (a.values) b.whereIn(`${prefix}purpose`, a.values);
          return;
        case 'channel':
          b.where(`${prefix}opted_out`, false);
          if (a.values) b.whereIn(`${prefix}channel`, a.values);
          return;
      }
    };
    if (dialect === 'sqlite') {
      // SQLite evaluates an uncorrelated IN (subquery) once into a temporary index, under and/or/not alike.
      const sub = function (this: Knex.QueryBuilder) {
        this.select('contact_id').from(table);
        filter(this, '');
      };
      if (negated) qb.whereNotIn('c.id', sub as never);
      else qb.whereIn('c.id', sub as never);
    } else {
      // PostgreSQL turns EXISTS into a hash semi-join (or anti-join) where it can, and otherwise
      // probes the index per contact; an IN (subquery) under "or" would rescan the whole subquery.
      const sub = function (this: Knex.QueryBuilder) {
        this.select(this.client.raw('1')).from({ m: table }).whereRaw('?? = ??', ['m.contact_id', 'c.id']);
        filter(this, 'm.');
      };
      if (negated) qb.whereNotExists(sub as never);
      else qb.whereExists(sub as never);
    }
    return;
  }
  if (a.t === 'lang') {
    // language = "es" matches "es" and "es-…"; a value with a region ("pt-BR") matches exactly.
    const parts: string[] = [];
    const bindings: unknown[] = [];
    for (const v of a.values) {
      if (v.includes('-')) {
        parts.push('?? = ?');
        bindings.push('c.language', v);
      } else {
        parts.push('(?? = ? or (?? >= ? and ?? < ?))');
        bindings.push('c.language', v, 'c.language', `${v}-`, 'c.language', `${v}.`);
      }
    }
    const positive = `(${parts.join(' or ')})`;
    if (negated) qb.whereRaw(`(?? is null or not ${positive})`, ['c.language', ...bindings]);
    else qb.whereRaw(positive, bindings);
    return;
  }
  const { sql, bindings } = positiveSql(a, dialect);
  if (a.t === 'set') {
    if (negated) qb.whereRaw(`not ${sql}`, bindings);
    else qb.whereRaw(sql, bindings);
    return;
  }
  if (negated) qb.whereRaw(`(${a.expr.sql} is null or not ${sql})`, [...a.expr.bindings, ...bindings]);
  else qb.whereRaw(sql, bindings);
}

/** The condition as SQL that is true when it holds and false or null otherwise. */
function positiveSql(a: Exclude<Atom, { t: 'member' | 'lang' }>, dialect: Dialect): Expr {
  const e = a.expr;
  switch (a.t) {
    case 'cmp':
      return { sql: `(${e.sql} ${OPS_SQL[a.op]} ?)`, bindings: [...e.bindings, a.value] };
    case 'range':
      return { sql: `(${e.sql} >= ? and ${e.sql} < ?)`, bindings: [...e.bindings, a.from, ...e.bindings, a.to] };
    case 'in':
      return { sql: `(${e.sql} in (${a.values.map(() => '?').join(', ')}))`, bindings: [...e.bindings, ...a.values] };
    case 'contains':
      // strpos/instr: the text is a plain substring, never a LIKE pattern.
      return dialect === 'postgresql'
        ? { sql: `(strpos(lower(${e.sql}), lower(?::text)) > 0)`, bindings: [...e.bindings, a.value] }
        : { sql: `(instr(lower(${e.sql}), lower(?)) > 0)`, bindings: [...e.bindings, a.value] };
    case 'set':
      return a.text ? { sql: `(coalesce(${e.sql}, '') <> '')`, bindings: [...e.bindings] } : { sql: `(${e.sql} is not null)`, bindings: [...e.bindings] };
  }
}
