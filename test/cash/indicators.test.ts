/**
 * The numbers the PDM rests on, pinned: the rCSI weights, maximum and phase bands; Cochran's sample
 * size with the finite population correction for the confidence levels and margins cash teams use;
 * the random sample; and the indicators of a set of responses.
 */
import { describe, expect, it } from 'vitest';
import { RCSI_BANDS, RCSI_ITEMS, RCSI_MAX, rcsiBand, rcsiScore } from '../../src/cash/rcsi.js';
import { normalQuantile, randomSample, sampleSize } from '../../src/cash/sampling.js';
import { indicatorsOf } from '../../src/cash/report.js';

const days = (a: number, b: number, c: number, d: number, e: number) => ({ rcsi_less_preferred: a, rcsi_borrow: b, rcsi_fewer_meals: c, rcsi_smaller_portions: d, rcsi_adults_less: e });

describe('rCSI', () => {
  it('weighs less preferred food 1, borrowing 2, fewer meals 1, smaller portions 1, adults eating less 3', () => {
    expect(Object.fromEntries(RCSI_ITEMS.map((i) => [i.code, i.weight]))).toEqual({ LessQlty: 1, Borrow: 2, MealNb: 1, MealSize: 1, MealAdult: 3 });
    expect(rcsiScore(days(1, 0, 0, 0, 0))).toBe(1);
    expect(rcsiScore(days(0, 1, 0, 0, 0))).toBe(2);
    expect(rcsiScore(days(0, 0, 1, 0, 0))).toBe(1);
    expect(rcsiScore(days(0, 0, 0, 1, 0))).toBe(1);
    expect(rcsiScore(days(0, 0, 0, 0, 1))).toBe(3);
    expect(rcsiScore(days(3, 2, 1, 4, 2))).toBe(3 + 4 + 1 + 4 + 6);
  });

  it('is 0 to 56', () => {
    expect(RCSI_MAX).toBe(56);
    expect(rcsiScore(days(0, 0, 0, 0, 0))).toBe(0);
    expect(rcsiScore(days(7, 7, 7, 7, 7))).toBe(56);
  });

  it('has no score when an answer is missing or not a number of days from 0 to 7', () => {
    expect(rcsiScore({ ...days(1, 1, 1, 1, 1), rcsi_borrow: null })).toBeNull();
    expect(rcsiScore({ rcsi_less_preferred: 1 })).toBeNull();
    expect(rcsiScore(days(8, 0, 0, 0, 0))).toBeNull();
    expect(rcsiScore(days(-1, 0, 0, 0, 0))).toBeNull();
    expect(rcsiScore(days(1.5, 0, 0, 0, 0))).toBeNull();
  });

  it('falls in the phases 0–3, 4–18 and 19 or more', () => {
    expect(RCSI_BANDS).toEqual(['0-3', '4-18', '19+']);
    expect([0, 3, 4, 18, 19, 56].map(rcsiBand)).toEqual(['0-3', '0-3', '4-18', '4-18', '19+', '19+']);
  });
});

describe('PDM sample size (Cochran, p = 0.5, finite population correction)', () => {
  const n = (population: number, confidence: number, margin: number) => sampleSize({ population, confidence, margin }).n;

  it('is 370 for 95 % ± 5 % of 10,000 recipients', () => {
    expect(n(10_000, 95, 5)).toBe(370);
    expect(sampleSize({ population: 10_000, confidence: 95, margin: 5 }).n0).toBeCloseTo(384.15, 2);
  });

  it('matches the published tables at 95 % ± 5 %', () => {
    expect(n(100, 95, 5)).toBe(80);
    expect(n(500, 95, 5)).toBe(218);
    expect(n(1_000, 95, 5)).toBe(278);
    expect(n(5_000, 95, 5)).toBe(357);
    expect(n(1_000_000, 95, 5)).toBe(384);
  });

  it('is 68 for 90 % ± 10 % of 10,000, and other known values', () => {
    expect(n(10_000, 90, 10)).toBe(68);
    expect(n(10_000, 99, 5)).toBe(623);
    expect(n(10_000, 95, 3)).toBe(965);
    expect(n(10_000, 99, 1)).toBe(6_240);
  });

  it('never exceeds the population, and is 0 for nobody', () => {
    expect(n(10, 95, 5)).toBe(10);
    expect(n(1, 95, 5)).toBe(1);
    expect(n(0, 95, 5)).toBe(0);
  });

  it('uses the standard normal quantile', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(normalQuantile(0.95)).toBeCloseTo(1.644854, 6);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829, 6);
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(0.025)).toBeCloseTo(-1.959964, 6);
  });

  it('refuses impossible inputs', () => {
    expect(() => sampleSize({ population: -1, confidence: 95, margin: 5 })).toThrow(/population/);
    expect(() => sampleSize({ population: 10, confidence: 100, margin: 5 })).toThrow(/confidence/);
    expect(() => sampleSize({ population: 10, confidence: 95, margin: 0 })).toThrow(/margin/);
  });
});

describe('random sample', () => {
  it('draws k distinct items from the population', () => {
    const pop = Array.from({ length: 1000 }, (_, i) => i);
    const s = randomSample(pop, 370);
    expect(s).toHaveLength(370);
    expect(new Set(s).size).toBe(370);
    expect(s.every((x) => x >= 0 && x < 1000)).toBe(true);
    expect(randomSample(pop, 5000)).toHaveLength(1000);
  });

  it('gives every item about the same chance', () => {
    const hits = new Array(10).fill(0);
    for (let i = 0; i < 5000; i++) for (const x of randomSample([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3)) hits[x]++;
    // Each item is drawn 1,500 times on average; 6 standard deviations either side.
    for (const h of hits) expect(Math.abs(h - 1500)).toBeLessThan(6 * Math.sqrt(5000 * 0.3 * 0.7));
  });
});

describe('indicators of the responses', () => {
  const base = {
    received: 'yes', amount_told: 'same', on_time: 'yes', problems: ['none'], asked_to_pay: 'no', felt_safe: 'yes', respected: 'yes', spending: ['food'],
    needs_met: 'most', satisfaction: 'satisfied', preferred_modality: 'cash', knows_complaint: 'yes', household_size: 4, rcsi: 2, rcsi_band: '0-3', gender: 'female', age_group: '25-59', admin1: 'Lima',
  };
  it('counts shares over the people each question was asked', () => {
    const rows = [
      base,
      { ...base, amount_told: 'less', problems: ['wait', 'agent_fee'], asked_to_pay: 'yes', felt_safe: 'no', spending: ['food', 'rent', 'health'], rcsi: 20, rcsi_band: '19+', satisfaction: 'dissatisfied' },
      { ...base, received: 'no', amount_told: null, on_time: null, problems: null, felt_safe: null, respected: null, spending: null, needs_met: null, satisfaction: null, rcsi: 10, rcsi_band: '4-18' },
      { ...base, received: 'not_sure', amount_told: null, on_time: null, problems: null, felt_safe: null, respected: null, spending: null, needs_met: null, satisfaction: null, rcsi: null, rcsi_band: null },
    ];
    const i = indicatorsOf(rows);
    expect(i.respondents).toBe(4);
    expect(i.received).toEqual({ n: 2, of: 4, percent: 50 });
    expect(i.receivedBreakdown).toEqual([{ key: 'yes', count: 2, percent: 50 }, { key: 'no', count: 1, percent: 25 }, { key: 'not_sure', count: 1, percent: 25 }]);
    expect(i.fullAmount).toEqual({ n: 1, of: 2, percent: 50 });
    expect(i.anyProblem).toEqual({ n: 1, of: 2, percent: 50 });
    expect(i.problems.find((p) => p.key === 'agent_fee')).toEqual({ key: 'agent_fee', count: 1, percent: 50 });
    expect(i.askedToPay).toEqual({ n: 1, of: 4, percent: 25 });
    expect(i.feltSafe).toEqual({ n: 1, of: 2, percent: 50 });
    expect(i.spending.find((s) => s.key === 'food')).toEqual({ key: 'food', count: 2, percent: 100 });
    expect(i.satisfied).toEqual({ n: 1, of: 2, percent: 50 });
    expect(i.rcsi).toMatchObject({ n: 3, mean: 10.7, median: 10, max: 20 });
    expect(i.rcsi.bands).toEqual([{ key: '0-3', count: 1, percent: 33.3 }, { key: '4-18', count: 1, percent: 33.3 }, { key: '19+', count: 1, percent: 33.3 }]);
  });
});
