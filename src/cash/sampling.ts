/**
 * PDM sample sizes and random samples.
 *
 * Cochran's formula for a proportion with p = 0.5 (the most conservative), corrected for a finite
 * population of N recipients:
 *   n0 = z² · p(1 − p) / e²        n = n0 / (1 + (n0 − 1) / N)        rounded up
 * where z is the two-sided standard normal quantile of the confidence level and e the margin of
 * error. For 95 % ± 5 %: n0 = 384.15, and for N = 10,000 recipients n = 370.
 */
import { randomInt } from 'node:crypto';

/**
 * The standard normal quantile Φ⁻¹(p), 0 < p < 1: Wichura's algorithm AS 241 (PPND16), accurate to
 * about 1e-16 — enough that a sample size never moves by rounding.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError('p must be between 0 and 1');
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q *
        (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r +
          3.387132872796366608)) /
      (((((((r * 5226.495278852545925 + 28729.085735721942674) * r + 39307.89580009271061) * r + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1)
    );
  }
  let r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let x: number;
  if (r <= 5) {
    r -= 1.6;
    x =
      (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r + 0.24178072517745061177) * r + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r +
        1.42343711074968357734) /
      (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
  } else {
    r -= 5;
    x =
      (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r + 5.4637849111641143699) * r +
        6.6579046435011037772) /
      (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1);
  }
  return q < 0 ? -x : x;
}

export interface SampleSizeInput {
  /** Recipients who could be asked (N). */
  population: number;
  /** Confidence level in percent, e.g. 95. */
  confidence: number;
  /** Margin of error in percent, e.g. 5. */
  margin: number;
  /** Expected proportion (default 0.5: the largest sample). */
  proportion?: number;
}

export interface SampleSize {
  /** The sample to draw: never more than the population. */
  n: number;
  /** Cochran's n0 before the finite population correction. */
  n0: number;
  z: number;
}

export function sampleSize(input: SampleSizeInput): SampleSize {
  const { population, confidence, margin } = input;
  const p = input.proportion ?? 0.5;
  if (!Number.isInteger(population) || population < 0) throw new RangeError('population must be a whole number ≥ 0');
  if (!(confidence > 0 && confidence < 100)) throw new RangeError('confidence must be a percentage between 0 and 100');
  if (!(margin > 0 && margin < 100)) throw new RangeError('margin must be a percentage between 0 and 100');
  const z = normalQuantile(1 - (1 - confidence / 100) / 2);
  const e = margin / 100;
  const n0 = (z * z * p * (1 - p)) / (e * e);
  if (population === 0) return { n: 0, n0, z };
  const corrected = n0 / (1 + (n0 - 1) / population);
  // Rounded up; a hair of floating-point noise above a whole number does not add a person.
  const n = Math.min(population, Math.ceil(corrected - 1e-9));
  return { n, n0, z };
}

/** k distinct items drawn uniformly at random (crypto-grade), in random order. */
export function randomSample<T>(items: readonly T[], k: number): T[] {
  const a = items.slice();
  const n = Math.min(k, a.length);
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(a.length - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}
