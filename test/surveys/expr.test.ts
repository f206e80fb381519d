/** The expression language: every operator and supported function, XPath value rules, and refusals. */
import { describe, expect, it } from 'vitest';
import { compileExpression, ExprError, FUNCTIONS, parse, references, type Value } from '../../src/surveys/expr.js';

function run(src: string, values: Record<string, Value> = {}, self: Value = '', cols: Record<string, string> = {}): Value {
  const { fn } = compileExpression(src, { columns: Object.keys(cols).length ? new Set(Object.keys(cols)) : undefined });
  return fn({ get: (n) => values[n] ?? '', self, col: (n) => cols[n] ?? '', today: '2026-11-22' });
}

function refusal(src: string, opts: Parameters<typeof parse>[1] = {}): ExprError {
  try {
    parse(src, opts);
  } catch (e) {
    if (e instanceof ExprError) return e;
    throw e;
  }
  throw new Error(`"${src}" was accepted`);
}

describe('operators', () => {
  it.each([
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ['7 div 2', 3.5],
    ['7 mod 3', 1],
    ['-3 + 1', -2],
    ['10 - 2 - 3', 5],
    ['2 * -1', -2],
    ['.5 + 1', 1.5],
  ])('%s = %s', (src, want) => {
    expect(run(src)).toBe(want);
  });

  it.each([
    ["${a} = 'yes'", { a: 'yes' }, true],
    ["${a} != 'yes'", { a: 'yes' }, false],
    ['${n} > 17', { n: 18 }, true],
    ['${n} >= 18 and ${n} <= 20', { n: 21 }, false],
    ["${n} < 5 or ${a} = 'x'", { n: 9, a: 'x' }, true],
    ["${n} <= 5", { n: 5 }, true],
    // A number compared with text that is a number: numbers.
    ["${n} = '5'", { n: 5 }, true],
    // An empty answer is '' and is never a number.
    ['${n} > 0', {}, false],
    ["${n} = ''", {}, true],
  ])('%s with %j is %s', (src, values, want) => {
    expect(run(src, values)).toBe(want);
  });

  it('. is the answer being checked', () => {
    expect(run('. >= 12 and . <= 110', {}, 30)).toBe(true);
    expect(run('. >= 12 and . <= 110', {}, 5)).toBe(false);
  });

  it('dates compare and subtract as days, as ODK does', () => {
    expect(run("${d} > '2026-01-01'", { d: '2026-11-22' })).toBe(true);
    expect(run("${d} < today()", { d: '2026-11-23' })).toBe(false);
    expect(run("today() - ${d}", { d: '2026-11-20' })).toBe(2);
    expect(run("date(today() - 1)")).toBe('2026-11-21');
  });

  it('and/or short-circuit and booleans compare as booleans', () => {
    expect(run('true() and not(false())')).toBe(true);
    expect(run("true() = 'anything'")).toBe(true);
    expect(run('false() or 0')).toBe(false);
  });
});

describe('functions', () => {
  const cases: [string, Record<string, Value>, Value][] = [
    ['not(${a})', { a: '' }, true],
    ["selected(${m}, 'health')", { m: 'work health' }, true],
    ["selected(${m}, 'heal')", { m: 'work health' }, false],
    ['count-selected(${m})', { m: 'work health school' }, 3],
    ['count-selected(${m})', {}, 0],
    ["if(${n} < 18, 'minor', 'adult')", { n: 17 }, 'minor'],
    ["if(${n} < 18, 'minor', 'adult')", { n: 40 }, 'adult'],
    ["coalesce(${a}, 'none')", {}, 'none'],
    ["coalesce(${a}, 'none')", { a: 'x' }, 'x'],
    ['string-length(${t})', { t: 'niño' }, 4],
    ["regex(${t}, '^[0-9]{8}$')", { t: '12345678' }, true],
    ["regex(${t}, '^[0-9]{8}$')", { t: '1234' }, false],
    ["concat(${a}, '-', ${n})", { a: 'x', n: 3 }, 'x-3'],
    ["contains(${t}, 'ab')", { t: 'cabal' }, true],
    ["starts-with(${t}, 'ca')", { t: 'cabal' }, true],
    ["ends-with(${t}, 'al')", { t: 'cabal' }, true],
    ['substr(${t}, 1, 3)', { t: 'cabal' }, 'ab'],
    ['substr(${t}, 2)', { t: 'cabal' }, 'bal'],
    ["number('3.5') + 1", {}, 4.5],
    ['int(7.9)', {}, 7],
    ['round(2.567, 2)', {}, 2.57],
    ['round(2.5)', {}, 3],
    ['string(12)', {}, '12'],
    ["boolean('')", {}, false],
    ['true()', {}, true],
    ['false()', {}, false],
    ['today()', {}, '2026-11-22'],
    ["date('2026-01-31')", {}, '2026-01-31'],
    ['min(3, ${n}, 5)', { n: 1 }, 1],
    ['max(3, ${n}, 5)', { n: 9 }, 9],
  ];
  it.each(cases)('%s with %j is %j', (src, values, want) => {
    expect(run(src, values)).toBe(want);
  });

  it('string-length() without an argument measures the answer', () => {
    expect(run('string-length() <= 3', {}, 'abcd')).toBe(false);
  });

  it('every supported function is covered by a case above', () => {
    const covered = new Set(cases.map(([src]) => src).join(' ').match(/[a-z-]+(?=\()/g));
    covered.add('string-length');
    for (const fn of Object.keys(FUNCTIONS)) expect(covered, fn).toContain(fn);
  });

  it('choice_filter reads choice columns by name', () => {
    expect(run('${state} = cf', { state: 'texas' }, '', { cf: 'texas' })).toBe(true);
    expect(run('${state} = cf', { state: 'texas' }, '', { cf: 'washington' })).toBe(false);
  });

  it('lists the questions an expression reads', () => {
    expect(references(parse("${a} > 1 and selected(${b}, 'x') or if(${c}, 1, 2)")).map((r) => r.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('refusals say what and where', () => {
  it.each([
    ["pulldata('fruits', 'name', 'name', 'mango')", /pulldata\(\) reads external CSV/, 0],
    ['indexed-repeat(${a}, ${r}, 1)', /repeats/, 0],
    ['foo(1)', /the function foo\(\) is not supported/, 0],
    ['/data/age > 3', /paths such as \/data/, 0],
    ['../age > 3', /parent paths/, 0],
    ["${a} = 'open", /not closed/, 7],
    ['${a} >', /ends too early/, 6],
    ['${a} = yes', /"yes" is not understood: write \$\{yes\}/, 7],
    ['${a} +* 2', /unexpected "\*"/, 6],
    ['if(1, 2)', /if\(\) takes 3 arguments, not 2/, 0],
    ["regex(., '[a-')", /regex\(\): the pattern is not valid/, 0],
    ['1 2', /unexpected value/, 2],
    ['', /empty/, 0],
    ['${bad name}', /not a valid question name/, 0],
  ])('%s', (src, message, offset) => {
    const e = refusal(src);
    expect(e.message).toMatch(message);
    expect(e.offset).toBe(offset);
  });

  it('in choice_filter, a bare word that is not a column is refused with the columns', () => {
    const e = refusal('pastel=yes', { columns: new Set(['name', 'pastel']) });
    expect(e.message).toMatch(/"yes" is not a column of this choice list \(columns: name, pastel\); quote text values/);
    expect(e.offset).toBe(7);
  });
});
