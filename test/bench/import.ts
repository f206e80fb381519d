/**
 * Contact import throughput: a 100,000-row CSV (quick: 5,000) with 1% bad rows, into a list on a
 * database that already holds 5% of the numbers. Measured end to end through `runImport`
 * (parsing, number normalisation, checks, database lookups, writes):
 *   - the dry run must list exactly the bad rows (row number and column);
 *   - a commit without "skip bad rows" must write nothing;
 *   - the commit with "skip bad rows" imports the rest.
 * Goal (issue 3): at least 50,000 rows/s for the dry run and for the commit on this 2-core machine.
 * Rows per CPU-second are reported beside the wall-clock rates: on a machine shared with other
 * work, they say what the same import does when it has the cores to itself.
 */
import { openTestDatabase } from '../helpers/db.js';
import { toInt } from '../../src/db/values.js';
import { runImport } from '../../src/contacts/import.js';
import type { Actor } from '../../src/staff/audit.js';
import { AGE_GROUPS, IMPORT_MAPPING, generateCsv, nationalNumber } from './import-data.js';
import { row, type Benchmark } from './types.js';

const ACTOR: Actor = { type: 'system', id: null, label: 'bench', role: 'system' };

const benchmark: Benchmark = {
  name: 'import',
  async run({ quick }) {
    const n = quick ? 5_000 : 100_000;
    const { db, close } = await openTestDatabase();
    try {
      const k = db.knex;
      const now = new Date();
      await k('contact_fields').insert([
        { key: 'region', label: 'Region', type: 'text', created_at: now },
        { key: 'age_group', label: 'Age group', type: 'choice', choices: JSON.stringify(AGE_GROUPS), created_at: now },
        { key: 'household_size', label: 'Household size', type: 'number', created_at: now },
      ]);
      await k('lists').insert({ key: 'bench', name: 'Bench', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now });
      // 5% of the file's numbers are contacts already (they merge).
      const existingRows = [];
      for (let i = 5; i < n; i += 20) existingRows.push({ name: `Known ${i}`, status: 'active', created_at: now, updated_at: now });
      const ids: number[] = [];
      for (let i = 0; i < existingRows.length; i += 500) {
        const got = await k('contacts').insert(existingRows.slice(i, i + 500)).returning('id');
        ids.push(...got.map((g: unknown) => toInt(typeof g === 'object' ? (g as { id: unknown }).id : g)));
      }
      const addresses = ids.map((id, j) => ({ contact_id: id, channel: 'sms', kind: 'phone', address: `+51${nationalNumber(5 + 20 * j)}`, created_at: now }));
      for (let i = 0; i < addresses.length; i += 500) await k("contact_addresses").insert(addresses.slice(i, i + 500));

      const file = generateCsv(n);
      const base = { list: 'bench', fileName: 'bench.csv', content: file.csv, mapping: IMPORT_MAPPING, basis: 'consent' as const, evidence: 'Benchmark: people registered at a help desk, told about updates and how to stop.' };
      const services = { db, config: { DEFAULT_COUNTRY: 'PE' } };

      const cpuSeconds = (since: NodeJS.CpuUsage) => {
        const c = process.cpuUsage(since);
        return (c.user + c.system) / 1e6;
      };
      let t0 = performance.now();
      let c0 = process.cpuUsage();
      const dry = await runImport(services, ACTOR, { ...base, dryRun: true });
      const drySeconds = (performance.now() - t0) / 1000;
      const dryCpu = cpuSeconds(c0);
      const reported = new Map(dry.errors.map((e) => [e.row, e.column]));
      const exact = reported.size === file.bad.size && [...file.bad].every(([r, c]) => reported.get(r) === c) && dry.rows.bad === file.bad.size;
      if (!exact) throw new Error(`the dry run reported ${dry.rows.bad} bad rows (${reported.size} distinct) where the file has exactly ${file.bad.size}`);

      const refused = await runImport(services, ACTOR, { ...base, dryRun: false });
      const [{ c: afterRefused }] = await k('consents').count({ c: '*' });
      if (refused.status !== 'failed' || toInt(afterRefused) !== 0) throw new Error('a commit with bad rows, not asked to skip them, wrote something');

      t0 = performance.now();
      c0 = process.cpuUsage();
      const done = await runImport(services, ACTOR, { ...base, dryRun: false, skipBadRows: true });
      const commitSeconds = (performance.now() - t0) / 1000;
      const commitCpu = cpuSeconds(c0);
      const [{ c: contacts }] = await k('contacts').count({ c: '*' });
      const [{ c: consents }] = await k('consents').count({ c: '*' });
      const expected = n - file.bad.size;
      if (done.status !== 'committed' || done.rows.imported !== expected || toInt(consents) !== expected || toInt(contacts) !== ids.length + done.rows.new) {
        throw new Error(`the commit imported ${done.rows.imported} rows (${toInt(consents)} consents, ${toInt(contacts)} contacts); expected ${expected}`);
      }
      const rps = (seconds: number) => Math.round(n / seconds);
      return [
        row(`import: dry run of ${n.toLocaleString('en')} CSV rows (${file.bad.size} bad, all listed exactly)`, rps(drySeconds), 'rows/s', { atLeast: 50_000 }),
        row(`import: commit of ${n.toLocaleString('en')} CSV rows, skipping the bad (${done.rows.new.toLocaleString('en')} new, ${done.rows.merged.toLocaleString('en')} merged)`, rps(commitSeconds), 'rows/s', { atLeast: 50_000 }),
        // CPU time of this process (JavaScript and SQLite's thread): what the same work takes on an idle machine.
        row('import: dry run, rows per CPU-second', rps(dryCpu), 'rows/s'),
        row('import: commit, rows per CPU-second', rps(commitCpu), 'rows/s'),
      ];
    } finally {
      await close();
    }
  },
};

export default benchmark;
