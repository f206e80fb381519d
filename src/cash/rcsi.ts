/**
 * The reduced Coping Strategies Index (rCSI, WFP/CARE): how many days in the last 7 a household
 * had to use each of five food-related coping strategies, weighted by severity.
 *
 *   less preferred or less expensive food  × 1   (LessQlty)
 *   borrow food or rely on help             × 2   (Borrow)
 *   limit portion size                      × 1   (MealSize)
 *   restrict adults' consumption for children × 3 (MealAdult)
 *   reduce the number of meals a day        × 1   (MealNb)
 *
 * Maximum 7 × (1 + 2 + 1 + 3 + 1) = 56. Phases (IPC): 0–3 minimal, 4–18 stressed, 19 and more
 * crisis or worse.
 */
export const RCSI_ITEMS = [
  { key: 'rcsi_less_preferred', code: 'LessQlty', weight: 1 },
  { key: 'rcsi_borrow', code: 'Borrow', weight: 2 },
  { key: 'rcsi_fewer_meals', code: 'MealNb', weight: 1 },
  { key: 'rcsi_smaller_portions', code: 'MealSize', weight: 1 },
  { key: 'rcsi_adults_less', code: 'MealAdult', weight: 3 },
] as const;
export type RcsiKey = (typeof RCSI_ITEMS)[number]['key'];

export const RCSI_MAX = 56;
export const RCSI_BANDS = ['0-3', '4-18', '19+'] as const;
export type RcsiBand = (typeof RCSI_BANDS)[number];

/** The score, or null when any of the five answers is missing or not 0–7 days. */
export function rcsiScore(days: Partial<Record<RcsiKey, number | null | undefined>>): number | null {
  let total = 0;
  for (const item of RCSI_ITEMS) {
    const d = days[item.key];
    if (d === null || d === undefined || !Number.isInteger(d) || d < 0 || d > 7) return null;
    total += d * item.weight;
  }
  return total;
}

export function rcsiBand(score: number): RcsiBand {
  if (score <= 3) return '0-3';
  if (score <= 18) return '4-18';
  return '19+';
}
