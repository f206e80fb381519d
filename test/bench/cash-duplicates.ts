/**
 * Duplicate detection in a beneficiary import: a 50,000-row CSV (quick: 5,000) into a list while
 * another list already holds 10% as many beneficiaries. Planted, 1% of the rows each:
 *   - the same phone number as an earlier row of the file,
 *   - the same household id as an earlier row (written differently: "HH-000123" / "hh 000123"),
 *   - the phone number of a beneficiary already in the other list,
 *   - the household id of a beneficiary already in the other list.
 * The dry run (reading, checks, detection; nothing written) must report exactly the planted rows,
 * each with its kind, and nothing else. Reported: its time, rows per second, duplicates found of
 * those planted and false alarms; then the commit's time (contacts, consent, beneficiaries and the
 * duplicate pairs written), for information.
 */
import { openTestDatabase } from '../helpers/db.js';
import { importBeneficiaries } from '../../src/cash/import.js';
import { createList } from '../../src/cash/lists.js';
import { householdKey } from '../../src/cash/model.js';
import type { Actor } from '../../src/staff/audit.js';
import { row, type Benchmark } from './types.js';

const ACTOR: Actor = { type: 'system', id: null, label: 'bench', role: 'system' };
const EVIDENCE = 'Benchmark: households registered at a help desk agreed to be contacted by SMS about the programme.';

const filePhone = (i: number) => `9${String(10_000_000 + i).padStart(8, '0')}`; // 910000000…
const listPhone = (i: number) => `+519${String(80_000_000 + i).padStart(8, '0')}`; // +51980000000…
const fileHousehold = (i: number) => `HH-${String(i).padStart(6, '0')}`;
const listHousehold = (i: number) => `PIU-${String(i).padStart(6, '0')}`;

type Kind = 'file:phone' | 'file:household_id' | 'existing:phone' | 'existing:household_id';

function generate(n: number, existing: number): { csv: string; planted: Map<number, Kind> } {
  const every = 25; // one row in 25 is planted: 4 kinds × 1%
  const kinds: Kind[] = ['file:phone', 'file:household_id', 'existing:phone', 'existing:household_id'];
  const planted = new Map<number, Kind>();
  const lines = ['household_id,name,phone,admin1,household_size,vulnerability'];
  let k = 0;
  for (let i = 0; i < n; i++) {
    const fileRow = i + 2; // the header is row 1
    let hh = fileHousehold(i);
    let phone = filePhone(i);
    if (i >= 100 && i % every === 0) {
      const kind = kinds[k++ % kinds.length];
      let earlier = i - 50 - (k % 40); // an earlier row left as generated
      while (earlier % every === 0) earlier--;
      const j = k; // each planted row matches its own existing beneficiary (two sharing one would also match each other)
      if (kind === 'file:phone') phone = filePhone(earlier);
      if (kind === 'file:household_id') hh = fileHousehold(earlier).replace('HH-', 'hh ');
      if (kind === 'existing:phone') phone = listPhone(j);
      if (kind === 'existing:household_id') hh = listHousehold(j);
      planted.set(fileRow, kind);
    }
    lines.push(`${hh},Persona ${i},${phone},Region ${i % 25},${1 + (i % 9)},${i % 3 === 0 ? 'disability;elderly' : ''}`);
  }
  return { csv: lines.join('\n') + '\n', planted };
}

const benchmark: Benchmark = {
  name: 'cash-duplicates',
  async run({ quick }) {
    const n = quick ? 5_000 : 50_000;
    const existing = Math.round(n / 10);
    const { db, close } = await openTestDatabase();
    try {
      const k = db.knex;
      const now = new Date();
      const other = await createList(db, ACTOR, { name: 'Piura (existing)' });
      const rows = Array.from({ length: existing }, (_, i) => ({
        list_id: other.id, household_id: listHousehold(i), household_key: householdKey(listHousehold(i)), name: `Existing ${i}`, phone: listPhone(i),
        status: 'enrolled', source: 'import', status_at: now, created_at: now, updated_at: now,
      }));
      for (let i = 0; i < rows.length; i += 500) await k('cash_beneficiaries').insert(rows.slice(i, i + 500));
      const list = await createList(db, ACTOR, { name: 'Tumbes (import)' });
      const { csv, planted } = generate(n, existing);
      const services = { db, config: { DEFAULT_COUNTRY: 'PE' } };

      let t0 = performance.now();
      const dry = await importBeneficiaries(services, ACTOR, { listId: list.id, fileName: 'bench.csv', content: csv, dryRun: true, evidence: EVIDENCE });
      const dryMs = performance.now() - t0;
      if (dry.rows.total !== n || dry.rows.bad !== 0) throw new Error(`the generated file should have ${n} good rows; the dry run read ${dry.rows.total} with ${dry.rows.bad} bad`);
      if (dry.duplicatesTruncated) throw new Error('the duplicate report was truncated');
      const found = new Map<number, Kind>();
      let falseAlarms = 0;
      for (const d of dry.duplicates) {
        const kind = `${d.scope}:${d.match}` as Kind;
        if (planted.get(d.row) === kind) found.set(d.row, kind);
        else falseAlarms++;
      }
      const allFound = found.size === planted.size;

      t0 = performance.now();
      const done = await importBeneficiaries(services, ACTOR, { listId: list.id, fileName: 'bench.csv', content: csv, dryRun: false, evidence: EVIDENCE });
      const commitMs = performance.now() - t0;
      const [{ c }] = await k('cash_duplicates').where('list_id', list.id).count({ c: '*' });
      if (done.rows.written !== n || Number(c) !== planted.size) throw new Error(`the commit wrote ${done.rows.written} beneficiaries and ${c} duplicate pairs; expected ${n} and ${planted.size}`);

      const label = `${n.toLocaleString('en')} rows`;
      return [
        row(`cash import dry run with duplicate detection, ${label}`, Math.round(dryMs), 'ms'),
        row(`cash import dry run throughput, ${label}`, Math.round(n / (dryMs / 1000)), 'rows/s'),
        row(`cash planted duplicates found (of ${planted.size}: file phone, file household, list phone, list household)`, found.size, 'rows', { atLeast: planted.size }),
        row('cash duplicate false alarms', falseAlarms, 'rows', { atMost: 0 }),
        row(`cash duplicates: all found`, allFound ? 1 : 0, 'yes=1', { atLeast: 1 }),
        row(`cash import commit (contacts, consent, beneficiaries, pairs), ${label}`, Math.round(commitMs), 'ms'),
      ];
    } finally {
      await close();
    }
  },
};

export default benchmark;
