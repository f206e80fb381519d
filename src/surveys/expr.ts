/**
 * The XLSForm expression language Ayni understands: a small XPath 1.0 subset with the ODK
 * functions surveys use. Written here (tokenizer → parser → closures) so that anything outside
 * the subset is refused when a definition is loaded, with the position of what is not understood.
 *
 *   ${field}   the value of a question or calculation      .   the current question's value
 *   'text' "text" 12 3.5                                     ( )
 *   or  and  =  !=  <  <=  >  >=  +  -  *  div  mod  unary -
 *   not() selected() count-selected() if() coalesce() string-length() regex()
 *   concat() contains() starts-with() ends-with() substr() number() int() round() string()
 *   boolean() true() false() today() date() min() max()
 *   name       a column of the choices sheet, only inside choice_filter
 *
 * Values follow XPath: a string, a number or a boolean. A select_multiple answer is the
 * space-separated list of its choice names; an empty answer is ''. A date is 'YYYY-MM-DD' and
 * becomes days since 1970-01-01 when used as a number, so dates compare and subtract as ODK does.
 */

export type Value = string | number | boolean;

export type Node =
  | { t: 'num'; v: number }
  | { t: 'str'; v: string }
  | { t: 'ref'; name: string; at: number }
  | { t: 'self'; at: number }
  | { t: 'col'; name: string; at: number }
  | { t: 'bin'; op: BinOp; l: Node; r: Node }
  | { t: 'neg'; e: Node }
  | { t: 'call'; fn: string; args: Node[]; at: number };

type BinOp = 'or' | 'and' | '=' | '!=' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | 'div' | 'mod';

export class ExprError extends Error {
  constructor(
    message: string,
    /** 0-based character offset in the expression. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExprError';
  }
}

// ------------------------------------------------------------------------------------- tokens

type Tok =
  | { k: 'num'; v: number; at: number }
  | { k: 'str'; v: string; at: number }
  | { k: 'ref'; v: string; at: number }
  | { k: 'name'; v: string; at: number }
  | { k: 'op'; v: string; at: number }
  | { k: 'end'; at: number };

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_.:-]/;
const REF_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '$' && src[i + 1] === '{') {
      const close = src.indexOf('}', i + 2);
      if (close < 0) throw new ExprError('"${" is not closed with "}"', i);
      const name = src.slice(i + 2, close).trim();
      if (!REF_NAME.test(name)) throw new ExprError(`"\${${name}}" is not a valid question name`, i);
      out.push({ k: 'ref', v: name, at: i });
      i = close + 1;
      continue;
    }
    if (c === "'" || c === '"' || c === '\u2018' || c === '\u201C') {
      const closeChar = c === '\u2018' ? '\u2019' : c === '\u201C' ? '\u201D' : c;
      const close = src.indexOf(closeChar, i + 1);
      if (close < 0) throw new ExprError(`the text starting with ${c} is not closed`, i);
      out.push({ k: 'str', v: src.slice(i + 1, close), at: i });
      i = close + 1;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(\d+(\.\d*)?|\.\d+)/.exec(src.slice(i))!;
      out.push({ k: 'num', v: Number(m[0]), at: i });
      i += m[0].length;
      if (NAME_START.test(src[i] ?? '')) throw new ExprError(`unexpected "${src[i]}" after the number ${m[0]}`, i);
      continue;
    }
    if (c === '.') {
      if (src[i + 1] === '.') throw new ExprError('".." (parent paths) is not supported: refer to questions as ${name}', i);
      out.push({ k: 'op', v: '.', at: i });
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '!=' || two === '<=' || two === '>=') {
      out.push({ k: 'op', v: two, at: i });
      i += 2;
      continue;
    }
    if ('=<>+-*(),'.includes(c)) {
      out.push({ k: 'op', v: c, at: i });
      i++;
      continue;
    }
    if (c === '/') throw new ExprError('paths such as /data/... are not supported: refer to questions as ${name}', i);
    if (c === '[' || c === ']') throw new ExprError('predicates [ ] are not supported', i);
    if (c === '|') throw new ExprError('node-set union "|" is not supported', i);
    if (c === '@') throw new ExprError('attributes "@" are not supported', i);
    if (NAME_START.test(c)) {
      let j = i + 1;
      while (j < src.length && NAME_CHAR.test(src[j])) {
        // "a-1" is a name in XPath only if the "-" is followed by a name character; keep "x -1" arithmetic working.
        j++;
      }
      let name = src.slice(i, j);
      // A trailing "." or "-" belongs to the next token ("selected(., 'x')" never reaches here, but "a.").
      while (/[.:-]$/.test(name)) name = name.slice(0, -1);
      out.push({ k: 'name', v: name, at: i });
      i += name.length;
      continue;
    }
    throw new ExprError(`unexpected character "${c}"`, i);
  }
  out.push({ k: 'end', at: src.length });
  return out;
}

// ------------------------------------------------------------------------------------- parser

/** Functions, with their argument counts [min, max]. */
export const FUNCTIONS: Record<string, [number, number]> = {
  not: [1, 1],
  selected: [2, 2],
  'count-selected': [1, 1],
  if: [3, 3],
  coalesce: [2, 2],
  'string-length': [0, 1],
  regex: [2, 2],
  concat: [1, 50],
  contains: [2, 2],
  'starts-with': [2, 2],
  'ends-with': [2, 2],
  substr: [2, 3],
  number: [1, 1],
  int: [1, 1],
  round: [1, 2],
  string: [1, 1],
  boolean: [1, 1],
  true: [0, 0],
  false: [0, 0],
  today: [0, 0],
  date: [1, 1],
  min: [1, 50],
  max: [1, 50],
};

/** Well-known functions outside the subset, to say why rather than just "unknown". */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  pulldata: 'pulldata() reads external CSV files, which Ayni does not have',
  'indexed-repeat': 'indexed-repeat() needs repeats, which are not supported',
  position: 'position() needs repeats, which are not supported',
  count: 'count() counts repeat instances; repeats are not supported',
  sum: 'sum() adds repeat instances; repeats are not supported',
  'jr:choice-name': 'jr:choice-name() is not supported',
  current: 'current() is not supported: in choice_filter, refer to choice columns by name and to questions as ${name}',
  now: 'now() is not supported; use today()',
  uuid: 'uuid() is not supported',
  random: 'random() is not supported',
  once: 'once() is not supported',
  instance: 'instance() (secondary instances) is not supported',
  'format-date': 'format-date() is not supported',
  'decimal-date-time': 'decimal-date-time() is not supported',
  'version': 'version() is not supported',
};

export interface ParseOptions {
  /** Bare names allowed (choice_filter: the choices sheet's columns). */
  columns?: ReadonlySet<string>;
}

export function parse(src: string, opts: ParseOptions = {}): Node {
  if (src.trim() === '') throw new ExprError('the expression is empty', 0);
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const isOp = (v: string) => {
    const t = toks[p];
    return (t.k === 'op' && t.v === v) || (t.k === 'name' && t.v === v && ['and', 'or', 'div', 'mod'].includes(v));
  };
  const expect = (v: string) => {
    const t = toks[p];
    if (t.k === 'op' && t.v === v) {
      p++;
      return;
    }
    throw new ExprError(`expected "${v}" ${describe(t)}`, t.at);
  };
  const describe = (t: Tok) => (t.k === 'end' ? 'at the end' : `before "${src.slice(t.at, t.at + 12)}"`);

  const binary = (ops: BinOp[], next: () => Node) => (): Node => {
    let l = next();
    for (;;) {
      const op = ops.find((o) => isOp(o));
      if (!op) return l;
      p++;
      l = { t: 'bin', op, l, r: next() };
    }
  };
  const unary = (): Node => {
    if (isOp('-')) {
      p++;
      return { t: 'neg', e: unary() };
    }
    return primary();
  };
  const mul = binary(['*', 'div', 'mod'], unary);
  const add = binary(['+', '-'], mul);
  const rel = binary(['<=', '>=', '<', '>'], add);
  const eq = binary(['=', '!='], rel);
  const and = binary(['and'], eq);
  const or = binary(['or'], and);

  const primary = (): Node => {
    const t = peek();
    switch (t.k) {
      case 'num':
        p++;
        return { t: 'num', v: t.v };
      case 'str':
        p++;
        return { t: 'str', v: t.v };
      case 'ref':
        p++;
        return { t: 'ref', name: t.v, at: t.at };
      case 'op':
        if (t.v === '.') {
          p++;
          return { t: 'self', at: t.at };
        }
        if (t.v === '(') {
          p++;
          const e = or();
          expect(')');
          return e;
        }
        throw new ExprError(`unexpected "${t.v}"`, t.at);
      case 'name': {
        p++;
        const next = peek();
        if (next.k === 'op' && next.v === '(') {
          const fn = t.v;
          p++;
          const args: Node[] = [];
          if (!(peek().k === 'op' && (peek() as { v: string }).v === ')')) {
            for (;;) {
              args.push(or());
              if (peek().k === 'op' && (peek() as { v: string }).v === ',') {
                p++;
                continue;
              }
              break;
            }
          }
          expect(')');
          const arity = FUNCTIONS[fn];
          if (!arity) {
            const why = KNOWN_UNSUPPORTED[fn] ?? KNOWN_UNSUPPORTED[fn.replace(/^.*:/, '')];
            throw new ExprError(why ?? `the function ${fn}() is not supported (supported: ${Object.keys(FUNCTIONS).join(', ')})`, t.at);
          }
          if (args.length < arity[0] || args.length > arity[1]) {
            const want = arity[0] === arity[1] ? `${arity[0]}` : `${arity[0]} to ${arity[1]}`;
            throw new ExprError(`${fn}() takes ${want} argument${arity[1] === 1 ? '' : 's'}, not ${args.length}`, t.at);
          }
          if (fn === 'regex' && args[1].t === 'str') {
            try {
              new RegExp(args[1].v);
            } catch (e) {
              throw new ExprError(`regex(): the pattern is not valid (${(e as Error).message})`, args[1] ? t.at : t.at);
            }
          }
          return { t: 'call', fn, args, at: t.at };
        }
        if (['and', 'or', 'div', 'mod'].includes(t.v)) throw new ExprError(`"${t.v}" needs a value before it`, t.at);
        if (opts.columns) {
          if (opts.columns.has(t.v)) return { t: 'col', name: t.v, at: t.at };
          throw new ExprError(`"${t.v}" is not a column of this choice list (columns: ${[...opts.columns].join(', ')}); quote text values, e.g. '${t.v}'`, t.at);
        }
        throw new ExprError(`"${t.v}" is not understood: write \${${t.v}} to refer to a question, or '${t.v}' for text`, t.at);
      }
      case 'end':
        throw new ExprError('the expression ends too early', t.at);
    }
  };

  const node = or();
  const last = peek();
  if (last.k !== 'end') throw new ExprError(`unexpected ${last.k === 'name' || last.k === 'op' ? `"${(last as { v: string }).v}"` : 'value'} ${describe(last)}`, last.at);
  return node;
}

/** The ${names} an expression reads, with their offsets. */
export function references(node: Node, out: { name: string; at: number }[] = []): { name: string; at: number }[] {
  switch (node.t) {
    case 'ref':
      out.push({ name: node.name, at: node.at });
      break;
    case 'bin':
      references(node.l, out);
      references(node.r, out);
      break;
    case 'neg':
      references(node.e, out);
      break;
    case 'call':
      for (const a of node.args) references(a, out);
      break;
  }
  return out;
}

export function usesSelf(node: Node): boolean {
  switch (node.t) {
    case 'self':
      return true;
    case 'bin':
      return usesSelf(node.l) || usesSelf(node.r);
    case 'neg':
      return usesSelf(node.e);
    case 'call':
      return node.fn === 'string-length' && node.args.length === 0 ? true : node.args.some(usesSelf);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------- evaluation

export interface Env {
  /** The value of ${name}: '' when empty or not relevant. */
  get(name: string): Value;
  /** The current question's value ("."). */
  self: Value;
  /** A choice column (choice_filter only). */
  col?(name: string): string;
  /** Today's date, 'YYYY-MM-DD'. */
  today: string;
}

export type Compiled = (env: Env) => Value;

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Days since 1970-01-01 for 'YYYY-MM-DD', else NaN. */
export function dateToDays(s: string): number {
  const m = ISO_DATE.exec(s);
  if (!m) return NaN;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isNaN(t) ? NaN : t / 86_400_000;
}

export function daysToDate(d: number): string {
  if (!Number.isFinite(d)) return '';
  return new Date(Math.round(d) * 86_400_000).toISOString().slice(0, 10);
}

export function toNumber(v: Value): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  const s = v.trim();
  if (s === '') return NaN;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return Number(s);
  return dateToDays(s);
}

export function toStr(v: Value): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Number.isNaN(v)) return 'NaN';
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(15)));
}

export function toBool(v: Value): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  return v.length > 0;
}

function equals(a: Value, b: Value): boolean {
  if (typeof a === 'boolean' || typeof b === 'boolean') return toBool(a) === toBool(b);
  if (typeof a === 'number' || typeof b === 'number') return toNumber(a) === toNumber(b);
  return a === b;
}

function compare(a: Value, b: Value): number {
  // Two ISO dates compare as dates; otherwise as numbers (XPath 1.0), NaN when not numbers.
  return toNumber(a) - toNumber(b);
}

function tokens(v: Value): string[] {
  const s = toStr(v).trim();
  return s === '' ? [] : s.split(/\s+/);
}

const regexCache = new Map<string, RegExp | null>();
function regexOf(pattern: string): RegExp | null {
  let r = regexCache.get(pattern);
  if (r === undefined) {
    try {
      r = new RegExp(pattern);
    } catch {
      r = null;
    }
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(pattern, r);
  }
  return r;
}

/** Compiles an expression tree to a closure. */
export function compile(node: Node): Compiled {
  switch (node.t) {
    case 'num': {
      const v = node.v;
      return () => v;
    }
    case 'str': {
      const v = node.v;
      return () => v;
    }
    case 'ref': {
      const name = node.name;
      return (env) => env.get(name);
    }
    case 'self':
      return (env) => env.self;
    case 'col': {
      const name = node.name;
      return (env) => (env.col ? env.col(name) : '');
    }
    case 'neg': {
      const e = compile(node.e);
      return (env) => -toNumber(e(env));
    }
    case 'bin': {
      const l = compile(node.l);
      const r = compile(node.r);
      switch (node.op) {
        case 'or':
          return (env) => toBool(l(env)) || toBool(r(env));
        case 'and':
          return (env) => toBool(l(env)) && toBool(r(env));
        case '=':
          return (env) => equals(l(env), r(env));
        case '!=':
          return (env) => !equals(l(env), r(env));
        case '<':
          return (env) => compare(l(env), r(env)) < 0;
        case '<=':
          return (env) => compare(l(env), r(env)) <= 0;
        case '>':
          return (env) => compare(l(env), r(env)) > 0;
        case '>=':
          return (env) => compare(l(env), r(env)) >= 0;
        case '+':
          return (env) => toNumber(l(env)) + toNumber(r(env));
        case '-':
          return (env) => toNumber(l(env)) - toNumber(r(env));
        case '*':
          return (env) => toNumber(l(env)) * toNumber(r(env));
        case 'div':
          return (env) => toNumber(l(env)) / toNumber(r(env));
        case 'mod':
          return (env) => toNumber(l(env)) % toNumber(r(env));
      }
    }
    // falls through (unreachable: every operator returns)
    case 'call': {
      const call = node as Extract<Node, { t: 'call' }>;
      const a = call.args.map(compile);
      switch (call.fn) {
        case 'not':
          return (env) => !toBool(a[0](env));
        case 'selected':
          return (env) => tokens(a[0](env)).includes(toStr(a[1](env)).trim());
        case 'count-selected':
          return (env) => tokens(a[0](env)).length;
        case 'if':
          return (env) => (toBool(a[0](env)) ? a[1](env) : a[2](env));
        case 'coalesce':
          return (env) => {
            const x = a[0](env);
            return toStr(x) !== '' ? x : a[1](env);
          };
        case 'string-length':
          return a.length === 0 ? (env) => [...toStr(env.self)].length : (env) => [...toStr(a[0](env))].length;
        case 'regex':
          return (env) => {
            const re = regexOf(toStr(a[1](env)));
            return re ? re.test(toStr(a[0](env))) : false;
          };
        case 'concat':
          return (env) => a.map((f) => toStr(f(env))).join('');
        case 'contains':
          return (env) => toStr(a[0](env)).includes(toStr(a[1](env)));
        case 'starts-with':
          return (env) => toStr(a[0](env)).startsWith(toStr(a[1](env)));
        case 'ends-with':
          return (env) => toStr(a[0](env)).endsWith(toStr(a[1](env)));
        case 'substr':
          // ODK substr(string, start, end?): 0-based start, exclusive end.
          return (env) => {
            const s = [...toStr(a[0](env))];
            const start = Math.max(0, Math.trunc(toNumber(a[1](env))) || 0);
            const end = a[2] ? Math.trunc(toNumber(a[2](env))) : s.length;
            return s.slice(start, Number.isNaN(end) ? s.length : end).join('');
          };
        case 'number':
          return (env) => toNumber(a[0](env));
        case 'int':
          return (env) => Math.trunc(toNumber(a[0](env)));
        case 'round':
          return (env) => {
            const x = toNumber(a[0](env));
            const digits = a[1] ? Math.trunc(toNumber(a[1](env))) : 0;
            const f = 10 ** digits;
            return Math.round(x * f) / f;
          };
        case 'string':
          return (env) => toStr(a[0](env));
        case 'boolean':
          return (env) => toBool(a[0](env));
        case 'true':
          return () => true;
        case 'false':
          return () => false;
        case 'today':
          return (env) => env.today;
        case 'date':
          return (env) => {
            const v = a[0](env);
            if (typeof v === 'string' && ISO_DATE.test(v.trim())) return v.trim();
            return daysToDate(toNumber(v));
          };
        case 'min':
          return (env) => Math.min(...a.map((f) => toNumber(f(env))));
        case 'max':
          return (env) => Math.max(...a.map((f) => toNumber(f(env))));
      }
      throw new ExprError(`the function ${call.fn}() is not supported`, call.at);
    }
  }
}

/** Parses and compiles; throws ExprError. */
export function compileExpression(src: string, opts: ParseOptions = {}): { node: Node; fn: Compiled } {
  const node = parse(src, opts);
  return { node, fn: compile(node) };
}
