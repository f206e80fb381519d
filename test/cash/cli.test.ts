/**
 * `ayni cash …` as an operator runs it: the sample size, a beneficiary import (dry run with its
 * bad rows and duplicates on stderr and exit code 2, then the commit), and the PDM run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createList } from '../../src/cash/lists.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const ayni = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/ayni.js', 'cash', ...args], { env: { ...process.env, DATABASE_URL: t.test.url, AYNI_FROM_SOURCE: '1', LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 90_000 });

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.close());

describe('ayni cash', () => {
  it('gives the PDM sample size', () => {
    const r = ayni('sample-size', '10000');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('370 of 10000 recipients (95% ± 5%');
    expect(ayni('sample-size', '10000', '--confidence', '90', '--margin', '10').stdout).toContain('68 of 10000');
    expect(ayni('sample-size', 'many').status).not.toBe(0);
  });

  it('imports beneficiaries: a dry run lists bad rows and duplicates and exits 2; the commit writes the good rows', async () => {
    const list = await createList(t.db, SYSTEM, { name: 'CLI' });
    const dir = mkdtempSync(join(tmpdir(), 'ayni-cash-'));
    const file = join(dir, 'hogares.csv');
    writeFileSync(file, 'ID,Nombre,Telefono\nH1,Rosa,987400001\nH2,Luis,123\nH1,Rosa bis,987400003\n');
    const evidence = 'Registro presencial: aceptaron ser contactados por SMS.';
    const dry = ayni('import', file, '--list', String(list.id), '--evidence', evidence, '--map', 'household_id=ID', '--dry-run');
    expect(dry.status).toBe(2);
    expect(dry.stdout).toContain('rows 3: 2 valid, 1 bad, 1 possible duplicates');
    expect(dry.stderr).toContain('row 3, Telefono: invalid phone number');
    expect(dry.stderr).toContain('row 4: same household id as row 2');
    expect(dry.stdout + dry.stderr).not.toContain('987400001');
    const done = ayni('import', file, '--list', String(list.id), '--evidence', evidence, '--map', 'household_id=ID', '--skip-bad-rows');
    expect(done.status).toBe(0);
    expect(done.stdout).toContain('Imported');
    expect(toInt((await t.db.knex('cash_beneficiaries').where('list_id', list.id).count({ n: '*' }))[0].n)).toBe(2);
    const pdm = ayni('pdm');
    expect(pdm.status).toBe(0);
    expect(pdm.stdout).toContain('No distribution is due.');
  });
});
