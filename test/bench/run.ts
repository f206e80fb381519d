/**
 * The benchmark runner:  npm run bench [-- --quick] [--filter TEXT] [--json FILE]
 *
 *   --quick        every benchmark on small data: a smoke test (CI); goals are shown but not judged
 *   --filter TEXT  only the benchmarks whose name contains TEXT (case-insensitive); repeat or comma-separate
 *   --json FILE    also write the rows, as printed, to FILE as a JSON array of {name, value, unit, goal, holds}
 *
 * Prints one table of every row. Exits 1 if a benchmark throws (the others still run), 2 on bad arguments,
 * otherwise 0: goals that do not hold are listed under the table, they do not fail the run.
 * Benchmarks run on SQLite; with AYNI_TEST_DB=postgresql and TEST_DATABASE_URL set, on PostgreSQL.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchmarks } from './registry.js';
import type { Row } from './types.js';

function usage(problem?: string): never {
  if (problem) process.stderr.write(`bench: ${problem}\n`);
  process.stderr.write('usage: npm run bench -- [--quick] [--filter TEXT] [--json FILE]\n');
  process.stderr.write(`benchmarks: ${benchmarks.map((b) => b.name).join(', ')}\n`);
  process.exit(problem ? 2 : 0);
}

function parse() {
  try {
    const { values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        filter: { type: 'string', multiple: true },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    return values;
  } catch (e) {
    return usage(e instanceof Error ? e.message : String(e));
  }
}

/** A value with as many digits as it deserves: 35012, 412, 23.9, 1.27, 0.0153. */
function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 100 || Number.isInteger(v)) return Math.round(v).toString();
  return String(Number(v.toPrecision(3)));
}

function formatTable(rows: Row[]): string {
  const header = ['name', 'value', 'unit', 'goal', 'holds'];
  const cells = rows.map((r) => [r.name, formatValue(r.value), r.unit, r.goal, r.holds === null ? '' : r.holds ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((s, i) => (i === 1 ? s.padStart(widths[i]) : s.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const args = parse();
  if (args.help) usage();
  const filters = (args.filter ?? []).flatMap((f) => f.split(',')).map((f) => f.trim().toLowerCase()).filter(Boolean);
  const chosen = filters.length ? benchmarks.filter((b) => filters.some((f) => b.name.toLowerCase().includes(f))) : benchmarks;
  if (chosen.length === 0) usage(`no benchmark matches ${filters.join(', ')}`);

  const rows: Row[] = [];
  const failed: string[] = [];
  for (const b of chosen) {
    process.stderr.write(`bench: ${b.name}${args.quick ? ' (quick)' : ''} …\n`);
    const started = performance.now();
    try {
      const got = await b.run({ quick: args.quick });
      rows.push(...got);
      process.stderr.write(`bench: ${b.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    } catch (e) {
      failed.push(b.name);
      process.stderr.write(`bench: ${b.name} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
  }

  process.stdout.write('\n' + formatTable(rows) + '\n\n');
  if (args.json) {
    const file = resolve(args.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(rows, null, 2) + '\n');
    process.stdout.write(`rows written to ${file}\n`);
  }
  const missed = rows.filter((r) => r.holds === false);
  if (args.quick) {
    process.stdout.write('quick mode: small data, a smoke test; goals are not judged.\n');
  } else if (missed.length) {
    process.stdout.write(`goals that do not hold (${missed.length}):\n${missed.map((r) => `  ${r.name}: ${formatValue(r.value)} ${r.unit}, goal ${r.goal}`).join('\n')}\n`);
  } else if (rows.some((r) => r.holds === true)) {
    process.stdout.write('every goal holds.\n');
  }
  if (failed.length) process.stdout.write(`benchmarks that failed: ${failed.join(', ')}\n`);
  process.exit(failed.length ? 1 : 0);
}

await main();
