/**
 * The segment query language: a hand-written tokenizer and recursive-descent parser that turn
 * query text into an AST. Parsing knows nothing about which fields exist; `compile.ts` checks
 * names, operators and values against the catalog and builds the SQL.
 *
 *   query      := orExpr?                      (empty text means every contact)
 *   orExpr     := andExpr ( "or" andExpr )*
 *   andExpr    := unary ( "and" unary )*
 *   unary      := "not" unary | "(" orExpr ")" | condition
 *   condition  := field op value
 *               | field [ "not" ] "in" "(" value ( "," value )* [","] ")"
 *               | field [ "not" ] "contains" value
 *               | field "is" [ "not" ] "set"
 *   op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
 *   field      := identifier | "fields." identifier       (identifier: letters, digits, _; starts with a letter or _)
 *   value      := "text" | 'text' | number | duration | date
 *   duration   := digits followed by h (hours), d (days) or w (weeks): 30d, 12h, 2w
 *   date       := YYYY-MM-DD, bare or quoted
 *
 * Keywords are case-insensitive. Strings take \" \' \\ \n \t escapes.
 */
import { SegmentError, positionAt, type Position } from './errors.js';

export type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type Value =
  | { kind: 'string'; value: string; pos: Position }
  | { kind: 'number'; value: number; pos: Position }
  | { kind: 'duration'; ms: number; text: string; pos: Position }
  | { kind: 'date'; value: string; pos: Position };

export interface FieldRef {
  name: string;
  /** Written as fields.<name>: only custom fields are considered. */
  custom: boolean;
  pos: Position;
}

export type Node =
  | { type: 'all' }
  | { type: 'and'; children: Node[] }
  | { type: 'or'; children: Node[] }
  | { type: 'not'; child: Node }
  | { type: 'compare'; field: FieldRef; op: CompareOp; value: Value; opPos: Position }
  | { type: 'in'; field: FieldRef; values: Value[]; negated: boolean }
  | { type: 'contains'; field: FieldRef; value: Value; negated: boolean }
  | { type: 'isSet'; field: FieldRef; negated: boolean };

type TokenType = 'ident' | 'string' | 'number' | 'duration' | 'date' | 'op' | '(' | ')' | ',' | 'eof';

interface Token {
  type: TokenType;
  /** identifier or operator text, the decoded string, or the literal as written. */
  text: string;
  offset: number;
  length: number;
}

export const MAX_QUERY_LENGTH = 10_000;
const MAX_DEPTH = 64;
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'contains', 'is', 'set']);
const DURATION_MS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

function isIdentStart(c: string): boolean {
  return /[A-Za-z_]/.test(c);
}
function isIdentPart(c: string): boolean {
  return /[A-Za-z0-9_]/.test(c);
}
function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const err = (msg: string, offset: number, length = 1): never => {
    throw new SegmentError('syntax', msg, positionAt(text, offset, length));
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\u00a0') {
      i++;
      continue;
    }
    const start = i;
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ type: c, text: c, offset: i, length: 1 });
      i++;
      continue;
    }
    if (c === '=' || c === '!' || c === '<' || c === '>') {
      const two = text.slice(i, i + 2);
      if (two === '==' || two === '!=' || two === '<=' || two === '>=' || two === '<>') {
        tokens.push({ type: 'op', text: two === '==' ? '=' : two === '<>' ? '!=' : two, offset: i, length: 2 });
        i += 2;
      } else if (c === '!') {
        err('"!" on its own is not an operator: write != or not', i);
      } else {
        tokens.push({ type: 'op', text: c, offset: i, length: 1 });
        i++;
      }
      continue;
    }
    if (c === '"' || c === "'" || c === '\u201c' || c === '\u2018') {
      // Straight quotes, or the curly quotes that word processors put in.
      const close = c === '\u201c' ? '\u201d' : c === '\u2018' ? '\u2019' : c;
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) err('this text has no closing quote', start, i - start);
        const ch = text[i];
        if (ch === close) {
          i++;
          break;
        }
        if (ch === '\\') {
          const next = text[i + 1];
          if (next === undefined) err('this text has no closing quote', start, i - start);
          const escapes: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', n: '\n', t: '\t', '\u201d': '\u201d', '\u2019': '\u2019' };
          if (!(next in escapes)) err(`unknown escape \\${next}: use \\" \\' \\\\ \\n or \\t`, i, 2);
          value += escapes[next];
          i += 2;
          continue;
        }
        if (ch < ' ' && ch !== '\t' && ch !== '\n') err('control characters are not allowed in text', i);
        value += ch;
        i++;
      }
      tokens.push({ type: 'string', text: value, offset: start, length: i - start });
      continue;
    }
    if (isDigit(c) || (c === '-' && isDigit(text[i + 1] ?? ''))) {
      const date = /^\d{4}-\d{2}-\d{2}(?![\w.])/.exec(text.slice(i));
      if (date) {
        tokens.push({ type: 'date', text: date[0], offset: i, length: date[0].length });
        i += date[0].length;
        continue;
      }
      const m = /^-?\d+(?:\.\d+)?/.exec(text.slice(i))!;
      i += m[0].length;
      const suffix = /^[A-Za-z_]\w*/.exec(text.slice(i));
      if (suffix) {
        const unit = suffix[0].toLowerCase();
        if (unit in DURATION_MS && /^\d+$/.test(m[0])) {
          i += suffix[0].length;
          tokens.push({ type: 'duration', text: m[0] + unit, offset: start, length: i - start });
          continue;
        }
        err(`"${m[0]}${suffix[0]}" is not a number or a duration: durations are whole numbers of h (hours), d (days) or w (weeks), such as 30d`, start, m[0].length + suffix[0].length);
      }
      tokens.push({ type: 'number', text: m[0], offset: start, length: m[0].length });
      continue;
    }
    if (isIdentStart(c)) {
      while (i < text.length && (isIdentPart(text[i]) || (text[i] === '.' && isIdentStart(text[i + 1] ?? '')))) i++;
      tokens.push({ type: 'ident', text: text.slice(start, i), offset: start, length: i - start });
      continue;
    }
    err(`unexpected character "${c}"`, i);
  }
  tokens.push({ type: 'eof', text: '', offset: text.length, length: 1 });
  return tokens;
}

/** Parses query text into an AST, or throws a SegmentError that says where and why. */
export function parseSegment(text: string): Node {
  if (text.length > MAX_QUERY_LENGTH) {
    throw new SegmentError('syntax', `the query is longer than ${MAX_QUERY_LENGTH} characters`, positionAt(text, MAX_QUERY_LENGTH));
  }
  const tokens = tokenize(text);
  let p = 0;
  let depth = 0;
  const peek = () => tokens[p];
  const pos = (t: Token) => positionAt(text, t.offset, t.length);
  const isKw = (t: Token, kw: string) => t.type === 'ident' && t.text.toLowerCase() === kw;
  const describe = (t: Token) =>
    t.type === 'eof' ? 'the end of the query' : t.type === 'string' ? `the text "${t.text}"` : `"${text.slice(t.offset, t.offset + t.length)}"`;
  const fail = (t: Token, msg: string): never => {
    throw new SegmentError('syntax', msg, pos(t));
  };

  if (tokens.length === 1) return { type: 'all' };

  function orExpr(): Node {
    const children = [andExpr()];
    while (isKw(peek(), 'or')) {
      p++;
      children.push(andExpr());
    }
    return children.length === 1 ? children[0] : { type: 'or', children };
  }

  function andExpr(): Node {
    const children = [unary()];
    while (isKw(peek(), 'and')) {
      p++;
      children.push(unary());
    }
    return children.length === 1 ? children[0] : { type: 'and', children };
  }

  function unary(): Node {
    const t = peek();
    if (++depth > MAX_DEPTH) fail(t, `the query nests more than ${MAX_DEPTH} levels deep`);
    try {
      if (isKw(t, 'not')) {
        p++;
        return { type: 'not', child: unary() };
      }
      if (t.type === '(') {
        p++;
        const inner = orExpr();
        const close = peek();
        if (close.type !== ')') fail(close, `expected ")" to close the "(" at column ${pos(t).column}, found ${describe(close)}`);
        p++;
        return inner;
      }
      return condition();
    } finally {
      depth--;
    }
  }

  function value(): Value {
    const t = peek();
    const at = pos(t);
    switch (t.type) {
      case 'string':
        p++;
        return { kind: 'string', value: t.text, pos: at };
      case 'number':
        p++;
        return { kind: 'number', value: Number(t.text), pos: at };
      case 'duration': {
        p++;
        const unit = t.text.slice(-1);
        return { kind: 'duration', ms: Number(t.text.slice(0, -1)) * DURATION_MS[unit], text: t.text, pos: at };
      }
      case 'date':
        p++;
        return { kind: 'date', value: t.text, pos: at };
      case 'ident':
        return fail(t, `expected a value, found ${describe(t)}: put text in quotes, like "${t.text}"`);
      default:
        return fail(t, `expected a value (text in quotes, a number, a date or a duration such as 30d), found ${describe(t)}`);
    }
  }

  function condition(): Node {
    const t = peek();
    if (t.type !== 'ident') {
      return fail(t, `expected a field name, found ${describe(t)}`);
    }
    if (KEYWORDS.has(t.text.toLowerCase())) fail(t, `expected a field name, found the word "${t.text}"`);
    p++;
    let name = t.text;
    let custom = false;
    if (name.includes('.')) {
      const [prefix, ...rest] = name.split('.');
      if (prefix.toLowerCase() !== 'fields' || rest.length !== 1) fail(t, `"${name}" is not a field name: custom fields are written as a name or as fields.name`);
      custom = true;
      name = rest[0];
    }
    const field: FieldRef = { name, custom, pos: pos(t) };
    const op = peek();
    if (op.type === 'op') {
      p++;
      return { type: 'compare', field, op: op.text as CompareOp, value: value(), opPos: pos(op) };
    }
    let negated = false;
    if (isKw(op, 'not')) {
      negated = true;
      p++;
    }
    const kw = peek();
    if (isKw(kw, 'in')) {
      p++;
      const open = peek();
      if (open.type !== '(') fail(open, `expected "(" after in, found ${describe(open)}`);
      p++;
      const values: Value[] = [];
      for (;;) {
        if (peek().type === ')' && values.length > 0) break;
        values.push(value());
        const sep = peek();
        if (sep.type === ',') {
          p++;
          continue;
        }
        if (sep.type === ')') break;
        fail(sep, `expected "," or ")" in the list of values, found ${describe(sep)}`);
      }
      p++;
      if (values.length > 1000) fail(open, 'a list of values can hold at most 1000 entries');
      return { type: 'in', field, values, negated };
    }
    if (isKw(kw, 'contains')) {
      p++;
      return { type: 'contains', field, value: value(), negated };
    }
    if (!negated && isKw(kw, 'is')) {
      p++;
      let isNot = false;
      if (isKw(peek(), 'not')) {
        isNot = true;
        p++;
      }
      const set = peek();
      if (!isKw(set, 'set')) fail(set, `expected "set" after "is${isNot ? ' not' : ''}", found ${describe(set)}`);
      p++;
      return { type: 'isSet', field, negated: isNot };
    }
    return fail(
      negated ? kw : op,
      negated
        ? `expected "in" or "contains" after "not", found ${describe(kw)}`
        : `expected an operator after ${name} (= != < <= > >= in, not in, contains, is set), found ${describe(op)}`,
    );
  }

  const root = orExpr();
  const rest = peek();
  if (rest.type !== 'eof') {
    if (rest.type === ')') fail(rest, 'this ")" has no matching "("');
    fail(rest, `expected "and", "or" or the end of the query, found ${describe(rest)}`);
  }
  return root;
}
