/** What a benchmark is and what it reports. Every benchmark module default-exports a `Benchmark`. */

export interface Row {
  /** What was measured, e.g. "api GET /api/v1/me throughput". Unique across all benchmarks. */
  name: string;
  value: number;
  /** e.g. "req/s", "ms", "x", "rows/s", "MB". */
  unit: string;
  /** The target in words a reader can check against `value`, e.g. ">= 1000", "<= 50"; "" when there is none. */
  goal: string;
  /** Whether `value` meets `goal`; null when there is no goal. */
  holds: boolean | null;
}

export interface BenchOptions {
  /** Small data, few iterations: a smoke test that every benchmark still runs (CI). Goals are not expected to hold. */
  quick: boolean;
}

export interface Benchmark {
  /** Short, unique; what `--filter` matches. */
  name: string;
  run(opts: BenchOptions): Promise<Row[]>;
}

/** A row with a goal of the form ">= n" or "<= n", judged here so that every benchmark judges alike. */
export function row(name: string, value: number, unit: string, goal?: { atLeast?: number; atMost?: number }): Row {
  if (goal?.atLeast !== undefined) return { name, value, unit, goal: `>= ${goal.atLeast}`, holds: value >= goal.atLeast };
  if (goal?.atMost !== undefined) return { name, value, unit, goal: `<= ${goal.atMost}`, holds: value <= goal.atMost };
  return { name, value, unit, goal: '', holds: null };
}
