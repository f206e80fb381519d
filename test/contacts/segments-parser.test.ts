/** The segment language without a database: tokens, AST, errors with positions and suggestions, checks against the catalog. */
import { describe, expect, it } from 'vitest';
import { parseSegment, tokenize, SegmentError, buildCatalog, compileSegment } from '../../src/contacts/segments/index.js';
import { editDistance, nearest } from '../../src/contacts/segments/errors.js';

const catalog = buildCatalog(
  [
    { key: 'region', label: 'Region', type: 'text', choices: null },
    { key: 'age_group', label: 'Age group', type: 'choice', choices: ['18-24', '25-39', '40-59', '60+'] },
    { key: 'household_size', label: 'Household size', type: 'number', choices: null },
    { key: 'arrived', label: 'Arrival date', type: 'date', choices: null },
  ],
  [
    { id: 1, key: 'migrants' },
    { id: 2, key: 'updates' },
  ],
);

function errorOf(fn: () => unknown): SegmentError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SegmentError) return e;
    throw e;
  }
  throw new Error('expected a SegmentError');
}

const compile = (q: string) => compileSegment(q, catalog, { dialect: 'sqlite', now: new Date('2026-03-01T12:00:00Z') });

describe('tokenizer', () => {
  it('reads strings, numbers, durations, dates, operators and words with their offsets', () => {
    const t = tokenize(`age >= 18 and last_seen > 30d or arrived < 2024-05-01 and region = "Li\\"ma"`);
    expect(t.map((x) => [x.type, x.text, x.offset])).toEqual([
      ['ident', 'age', 0], ['op', '>=', 4], ['number', '18', 7], ['ident', 'and', 10],
      ['ident', 'last_seen', 14], ['op', '>', 24], ['duration', '30d', 26], ['ident', 'or', 30],
      ['ident', 'arrived', 33], ['op', '<', 41], ['date', '2024-05-01', 43], ['ident', 'and', 54],
      ['ident', 'region', 58], ['op', '=', 65], ['string', 'Li"ma', 67], ['eof', '', 75],
    ]);
  });

  it('accepts single quotes, curly quotes, == and <>', () => {
    expect(tokenize(`a == 'x' and b <> \u201cy\u201d`).map((x) => x.text)).toEqual(['a', '=', 'x', 'and', 'b', '!=', 'y', '']);
  });

  it('points at an unterminated string and at a bad character', () => {
    const e = errorOf(() => tokenize('region = "Lima'));
    expect(e.position).toMatchObject({ offset: 9, line: 1, column: 10 });
    expect(e.message).toMatch(/no closing quote/);
    const e2 = errorOf(() => tokenize('region = Lima;'));
    expect(e2.position.column).toBe(14);
    expect(e2.message).toBe('unexpected character ";"');
  });

  it('rejects 30 days written as 30 days or 30m', () => {
    expect(errorOf(() => tokenize('last_seen > 30m')).message).toMatch(/durations are whole numbers of h \(hours\), d \(days\) or w \(weeks\)/);
  });
});

describe('parser', () => {
  it('gives "and" precedence over "or", and honours parentheses and not', () => {
    expect(parseSegment('a = "1" or b = "2" and c = "3"')).toMatchObject({
      type: 'or',
      children: [{ type: 'compare', field: { name: 'a' } }, { type: 'and', children: [{ field: { name: 'b' } }, { field: { name: 'c' } }] }],
    });
    expect(parseSegment('(a = "1" or b = "2") and not c = "3"')).toMatchObject({
      type: 'and',
      children: [{ type: 'or' }, { type: 'not', child: { type: 'compare', field: { name: 'c' } } }],
    });
  });

  it('parses in, not in, contains, is set, is not set and fields.<key>', () => {
    expect(parseSegment('age_group not in ("18-24", "25-39",)')).toMatchObject({ type: 'in', negated: true, values: [{ value: '18-24' }, { value: '25-39' }] });
    expect(parseSegment('name contains "mar"')).toMatchObject({ type: 'contains', negated: false });
    expect(parseSegment('name not contains "mar"')).toMatchObject({ type: 'contains', negated: true });
    expect(parseSegment('region is not set')).toMatchObject({ type: 'isSet', negated: true });
    expect(parseSegment('fields.region IS SET')).toMatchObject({ type: 'isSet', negated: false, field: { name: 'region', custom: true } });
  });

  it('treats an empty query as every contact', () => {
    expect(parseSegment('   ')).toEqual({ type: 'all' });
  });

  it('reports line and column on a later line', () => {
    const e = errorOf(() => parseSegment('language = "es"\nand region = \n'));
    expect(e.position).toMatchObject({ line: 3, column: 1 });
    expect(e.message).toMatch(/expected a value/);
    const e2 = errorOf(() => parseSegment('language = "es"\n  and and'));
    expect(e2.position).toMatchObject({ line: 2, column: 7 });
  });

  it('explains unbalanced parentheses and stray words', () => {
    expect(errorOf(() => parseSegment('(language = "es"')).message).toMatch(/expected "\)" to close the "\(" at column 1/);
    expect(errorOf(() => parseSegment('language = "es")')).message).toBe('this ")" has no matching "("');
    expect(errorOf(() => parseSegment('language = "es" region = "Lima"')).message).toMatch(/expected "and", "or" or the end of the query, found "region"/);
    expect(errorOf(() => parseSegment('region = Lima')).message).toMatch(/put text in quotes, like "Lima"/);
  });

  it('refuses absurd nesting instead of overflowing the stack', () => {
    const deep = '('.repeat(1000) + 'a = "1"' + ')'.repeat(1000);
    expect(errorOf(() => parseSegment(deep)).message).toMatch(/nests more than/);
    expect(errorOf(() => parseSegment('not '.repeat(100) + 'a = "1"')).message).toMatch(/nests more than/);
  });
});

describe('checking against the catalog', () => {
  it('compiles the example from the issue', () => {
    const c = compile('language = "es" and region = "Lima" and list = "migrants" and age_group in ("18-24", "25-39") and consent = "surveys" and not last_seen > 30d');
    expect(c.attributes.sort()).toEqual(['age_group', 'consent', 'language', 'last_seen', 'list', 'region']);
  });

  it('suggests the nearest field for a misspelled one, with its position', () => {
    const e = errorOf(() => compile('language = "es" and regoin = "Lima"'));
    expect(e.code).toBe('unknown_field');
    expect(e.suggestion).toBe('region');
    expect(e.position).toMatchObject({ offset: 20, column: 21, length: 6 });
    expect(e.display).toBe('line 1, column 21: unknown field "regoin"; did you mean "region"?');
    expect(errorOf(() => compile('lastseen > 30d')).suggestion).toBe('last_seen');
    expect(errorOf(() => compile('fields.regio = "x"')).suggestion).toBe('fields.region');
    const far = errorOf(() => compile('zzzzzzzz = "x"'));
    expect(far.suggestion).toBeUndefined();
    expect(far.message).toMatch(/known fields are .*region/);
  });

  it('suggests list keys, purposes and choices', () => {
    expect(errorOf(() => compile('list = "migrnts"')).suggestion).toBe('migrants');
    expect(errorOf(() => compile('consent = "survey"')).suggestion).toBe('surveys');
    const e = errorOf(() => compile('age_group = "18-25"'));
    expect(e.code).toBe('unknown_value');
    expect(e.message).toMatch(/not one of the choices of age_group \(18-24, 25-39, 40-59, 60\+\)/);
    expect(e.position.column).toBe(13);
    expect(errorOf(() => compile('channel = "telegram"')).message).toMatch(/not a channel \(whatsapp, sms\)/);
  });

  it('checks types: numbers without quotes, text in quotes, order only on numbers and dates', () => {
    expect(errorOf(() => compile('household_size = "4"')).message).toMatch(/household_size is a number/);
    expect(errorOf(() => compile('region > "L"')).message).toMatch(/> needs a number or a date; region is text/);
    expect(errorOf(() => compile('region = 5')).message).toMatch(/region is text: put the value in quotes/);
    expect(errorOf(() => compile('last_seen = 30d')).message).toMatch(/last_seen > 30d for "within the last 30d"/);
    expect(errorOf(() => compile('last_seen > "yesterday"')).message).toMatch(/last_seen is a date/);
    expect(errorOf(() => compile('arrived > 2024-02-30')).message).toMatch(/arrived is a date/);
    expect(errorOf(() => compile('list contains "m"')).code).toBe('operator');
    expect(errorOf(() => compile('list > "migrants"')).message).toMatch(/list can only be compared with = or !=/);
  });

  it('accepts aliases and the built-in names in any case', () => {
    expect(compile('medium = "whatsapp" and LANGUAGE = "ES"').attributes.sort()).toEqual(['channel', 'language']);
  });
});

describe('suggestions', () => {
  it('measures edit distance', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('Region', 'region')).toBe(0);
    expect(nearest('lenguage', ['language', 'list'])).toBe('language');
    expect(nearest('q', ['language', 'list'])).toBeUndefined();
  });
});
