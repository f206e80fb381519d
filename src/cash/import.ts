/**
 * Importing beneficiaries into a list from CSV or XLSX (household id, name, phone, admin areas,
 * household size, vulnerability criteria; optionally gender and age).
 *
 * 1. Read and check each row without the database: its problems are listed with the row number,
 *    the column and the reason (a household id or a phone is needed; the number must be valid; the
 *    household size a whole number from 1 to 50…).
 * 2. Find possible duplicates: within the file (same number, same household id) and against every
 *    list that is not archived (duplicates.ts). They are not errors: they are written as candidates
 *    with an open duplicate for staff to resolve (keep one, keep both, exclude both).
 * 3. A dry run stops there and reports everything, writing nothing but the record of the attempt.
 *    A commit is all or nothing: with any bad row nothing is written, unless the importer asked to
 *    skip bad rows. In one transaction it finds or creates each number's contact (contacts domain),
 *    records a `cash_programme` consent (method import, with the evidence the importer states) for
 *    contacts who were never asked — a person who withdrew it is left withdrawn — and writes the
 *    beneficiaries and their possible duplicates.
 * Every attempt is recorded in `cash_imports` and audited (counts only).
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { findOrCreateContacts, type AddressRef } from '../contacts/addresses.js';
import { LEGAL_BASES, recordConsent } from '../contacts/consent.js';
import { audit, type Actor } from '../staff/audit.js';
import { findExistingMatches, findFileDuplicates, recordDuplicates, type MatchKind } from './duplicates.js';
import {
  cellText, chunk, importInvalid, insertedId, isBlank, MAX_REPORTED, MAX_ROWS, openFile, phoneReader, resolveColumns, short,
  type Cell, type Column, type ImportFormat, type RowError,
} from './files.js';
import { getList } from './lists.js';
import { ageGroup, AGE_GROUPS, householdKey } from './model.js';

export const BENEFICIARY_TARGETS = ['household_id', 'name', 'phone', 'admin1', 'admin2', 'admin3', 'household_size', 'vulnerability', 'gender', 'age', 'age_group'] as const;
type Target = (typeof BENEFICIARY_TARGETS)[number];

/** Header words recognised without a mapping (lower case, without accents, spaces or punctuation). */
export const BENEFICIARY_GUESSES: Record<Target, string[]> = {
  household_id: ['householdid', 'household', 'hhid', 'hh', 'idhogar', 'hogar', 'codigohogar', 'codhogar', 'familyid', 'caseid', 'idfamilia', 'codigofamilia'],
  name: ['name', 'fullname', 'nombre', 'nombres', 'nombrecompleto', 'jefedehogar', 'headofhousehold', 'beneficiary', 'beneficiario', 'titular'],
  phone: ['phone', 'phonenumber', 'telephone', 'telefono', 'tel', 'celular', 'cel', 'movil', 'mobile', 'msisdn', 'numero', 'whatsapp'],
  admin1: ['admin1', 'adm1', 'region', 'departamento', 'department', 'state', 'estado'],
  admin2: ['admin2', 'adm2', 'provincia', 'province', 'municipio', 'municipality'],
  admin3: ['admin3', 'adm3', 'distrito', 'district', 'parroquia', 'comuna'],
  household_size: ['householdsize', 'hhsize', 'size', 'tamanohogar', 'tamanodelhogar', 'miembros', 'members', 'personas', 'integrantes'],
  vulnerability: ['vulnerability', 'vulnerabilities', 'vulnerabilidad', 'vulnerabilidades', 'criteria', 'criterios', 'criteriosdevulnerabilidad'],
  gender: ['gender', 'sex', 'sexo', 'genero'],
  age: ['age', 'edad'],
  age_group: ['agegroup', 'grupoedad', 'grupodeedad', 'rangoedad'],
};

const GENDER_WORDS: Record<string, 'female' | 'male' | 'other'> = {
  f: 'female', female: 'female', woman: 'female', femenino: 'female', mujer: 'female', fem: 'female',
  m: 'male', male: 'male', man: 'male', masculino: 'male', hombre: 'male', masc: 'male', h: 'male',
  other: 'other', otro: 'other', otra: 'other', x: 'other', nonbinary: 'other', nobinario: 'other',
};

export const beneficiaryImportSchema = z.object({
  listId: z.number().int().positive(),
  fileName: z.string().trim().min(1).max(255).refine((n) => !/[\\/\u0000-\u001f]/.test(n), { message: 'a file name only, without folders' }),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.record(z.string().trim().min(1).max(64), z.string().trim().min(1).max(200)).optional(),
  dryRun: z.boolean(),
  skipBadRows: z.boolean().optional(),
  /** Enrol rows that have no possible duplicate (default: every row is a candidate). */
  enrol: z.boolean().optional(),
  /** Legal basis of the `cash_programme` consent recorded for the numbers (default consent). */
  basis: z.enum(LEGAL_BASES).optional(),
  evidence: z.string().trim().min(10, { message: 'say what the households were told and how they agreed to be contacted (at least 10 characters)' }).max(2000),
  now: z.date().optional(),
});
export type BeneficiaryImportInput = z.input<typeof beneficiaryImportSchema> & { content: Uint8Array | string };

export interface DuplicateFinding {
  /** The row (file numbering) that looks like a duplicate. */
  row: number;
  match: MatchKind;
  scope: 'file' | 'existing';
  /** file: the earlier row with the same value. */
  otherRow?: number;
  /** existing: the beneficiary already in a list. */
  other?: { beneficiaryId: number; listId: number; listName: string; status: string };
}

export interface BeneficiaryImportReport {
  importId: number;
  status: 'dry_run' | 'committed' | 'failed';
  fileName: string;
  format: ImportFormat;
  listId: number;
  columns: string[];
  mapping: Record<string, string>;
  ignoredColumns: string[];
  rows: {
    total: number;
    valid: number;
    bad: number;
    /** valid rows with at least one possible duplicate (in the file or in a list) */
    duplicate: number;
    /** beneficiaries written (0 for a dry run) */
    written: number;
    enrolled: number;
    skipped: number;
  };
  errors: RowError[];
  errorsTruncated: boolean;
  duplicates: DuplicateFinding[];
  duplicatesTruncated: boolean;
  ms: { read: number; duplicates: number; write: number };
}

interface GoodRow {
  row: number;
  householdId: string | null;
  householdKey: string | null;
  name: string | null;
  phone: string | null;
  admin1: string | null;
  admin2: string | null;
  admin3: string | null;
  householdSize: number | null;
  vulnerability: string[] | null;
  gender: string | null;
  ageGroup: string | null;
}

function rowChecker(cols: Partial<Record<Target, Column>>, defaultCountry: string) {
  const phoneOf = phoneReader(defaultCountry);
  const text = (cells: Cell[], c: Column | undefined) => (c ? cellText(cells[c.index] ?? null) : '');
  return (row: number, cells: Cell[]): { ok: true; row: GoodRow } | { ok: false; errors: RowError[] } => {
    const errors: RowError[] = [];
    const fail = (c: Column | undefined, value: Cell, reason: string) => errors.push({ row, column: c ? c.header : null, value: short(value), reason });
    const limited = (t: Target, max: number, what: string): string | null => {
      const v = text(cells, cols[t]);
      if (v.length > max) {
        fail(cols[t], v, `${what} is longer than ${max} characters`);
        return null;
      }
      return v || null;
    };
    const householdId = limited('household_id', 64, 'the household id');
    const name = limited('name', 200, 'the name');
    let phone: string | null = null;
    if (cols.phone) {
      const raw = cells[cols.phone.index] ?? null;
      if (!isBlank(raw)) {
        const p = phoneOf(raw);
        if (p.ok) phone = p.e164;
        else fail(cols.phone, raw, p.reason);
      }
    }
    if (!householdId && !phone && !errors.some((e) => e.column === cols.phone?.header || e.column === cols.household_id?.header)) {
      fail(cols.household_id ?? cols.phone, null, 'the row has neither a household id nor a phone number');
    }
    const admin1 = limited('admin1', 100, 'admin1');
    const admin2 = limited('admin2', 100, 'admin2');
    const admin3 = limited('admin3', 100, 'admin3');
    let householdSize: number | null = null;
    if (cols.household_size) {
      const raw = cells[cols.household_size.index] ?? null;
      if (!isBlank(raw)) {
        const n = typeof raw === 'number' ? raw : /^\d+$/.test(cellText(raw)) ? Number(cellText(raw)) : NaN;
        if (!Number.isInteger(n) || n < 1 || n > 50) fail(cols.household_size, raw, 'the household size must be a whole number from 1 to 50');
        else householdSize = n;
      }
    }
    let vulnerability: string[] | null = null;
    if (cols.vulnerability) {
      const v = text(cells, cols.vulnerability);
      if (v) {
        const parts = [...new Set(v.split(/[;,|\n]/).map((p) => p.trim()).filter(Boolean))];
        if (parts.some((p) => p.length > 64)) fail(cols.vulnerability, v, 'each vulnerability criterion must be at most 64 characters (separate them with ; or ,)');
        else if (parts.length > 20) fail(cols.vulnerability, v, 'at most 20 vulnerability criteria');
        else vulnerability = parts;
      }
    }
    let gender: string | null = null;
    if (cols.gender) {
      const v = text(cells, cols.gender);
      if (v) {
        const g = GENDER_WORDS[v.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z]/g, '')];
        if (g) gender = g;
        else fail(cols.gender, v, 'the gender must be female, male or other (F, M, mujer, hombre…)');
      }
    }
    let group: string | null = null;
    if (cols.age) {
      const raw = cells[cols.age.index] ?? null;
      if (!isBlank(raw)) {
        const n = typeof raw === 'number' ? raw : /^\d+$/.test(cellText(raw)) ? Number(cellText(raw)) : NaN;
        if (!Number.isInteger(n) || n < 0 || n > 120) fail(cols.age, raw, 'the age must be a whole number of years from 0 to 120');
        else group = ageGroup(n);
      }
    }
    if (cols.age_group && !group) {
      const v = text(cells, cols.age_group).replace(/\s+/g, '');
      if (v) {
        if ((AGE_GROUPS as readonly string[]).includes(v)) group = v;
        else fail(cols.age_group, v, `the age group must be one of ${AGE_GROUPS.join(', ')}`);
      }
    }
    if (errors.length) return { ok: false, errors };
    return {
      ok: true,
      row: { row, householdId, householdKey: householdId ? householdKey(householdId) || null : null, name, phone, admin1, admin2, admin3, householdSize, vulnerability, gender, ageGroup: group },
    };
  };
}

/** Dry run or commit of a beneficiary file into a list. See the module comment. */
export async function importBeneficiaries(services: { db: Database; config: Pick<Config, 'DEFAULT_COUNTRY'> }, actor: Actor, input: BeneficiaryImportInput): Promise<BeneficiaryImportReport> {
  const parsed = beneficiaryImportSchema.safeParse({ ...input, content: undefined });
  if (!parsed.success) throw importInvalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])), 'The import request is not valid');
  const opts = parsed.data;
  const { db } = services;
  const knex = db.knex;
  const now = opts.now ?? new Date();
  const t0 = performance.now();
  const list = await getList(knex, opts.listId);
  if (list.archivedAt) throw importInvalid({ listId: 'the list is archived' });

  const { format, source } = await openFile(opts.fileName, input.content, opts.format);
  const resolved = resolveColumns(source.headers, opts.mapping, BENEFICIARY_GUESSES);
  const cols = resolved.columns;
  if (!cols.household_id && !cols.phone) {
    throw importInvalid(
      { 'mapping.household_id': `no column holds household ids or phone numbers: map one, such as household_id=${source.headers.find(Boolean) ?? 'ID'} (the columns are ${source.headers.filter(Boolean).join(', ')})` },
      'The column mapping does not fit the file',
    );
  }
  const check = rowChecker(cols, services.config.DEFAULT_COUNTRY);
  const good: GoodRow[] = [];
  const errors: RowError[] = [];
  const badRows = new Set<number>();
  let total = 0;
  try {
    for await (const batch of source.rows) {
      for (const { row, cells } of batch) {
        if (cells.every(isBlank)) continue;
        total++;
        if (total > MAX_ROWS) throw importInvalid({ file: `the file has more than ${MAX_ROWS.toLocaleString('en')} rows: split it` });
        const r = check(row, cells);
        if (r.ok) good.push(r.row);
        else {
          errors.push(...r.errors);
          badRows.add(row);
        }
      }
    }
  } catch (e) {
    if ((e as Error).name === 'FileError') throw importInvalid({ file: (e as Error).message });
    throw e;
  }
  if (total === 0) throw importInvalid({ file: 'the file has a header but no rows' });
  const readMs = performance.now() - t0;

  // Possible duplicates among the valid rows and against the lists.
  const t1 = performance.now();
  const inFile = findFileDuplicates(good);
  const existing = await findExistingMatches(knex, good);
  const dupMs = performance.now() - t1;
  const findings: DuplicateFinding[] = [
    ...inFile.map((d) => ({ row: good[d.index].row, match: d.match, scope: 'file' as const, otherRow: good[d.otherIndex].row })),
    ...existing.map((m) => ({ row: good[m.index].row, match: m.match, scope: 'existing' as const, other: { beneficiaryId: m.beneficiaryId, listId: m.listId, listName: m.listName, status: m.status } })),
  ].sort((a, b) => a.row - b.row);
  const dupIndexes = new Set<number>([...inFile.map((d) => d.index), ...existing.map((m) => m.index)]);
  // Either side of a pair waits for staff: the first row of a pair is not enrolled either.
  const inPairs = new Set<number>([...dupIndexes, ...inFile.map((d) => d.otherIndex)]);

  const report = (importId: number, status: BeneficiaryImportReport['status'], written: number, enrolled: number, writeMs: number): BeneficiaryImportReport => {
    errors.sort((a, b) => a.row - b.row);
    return {
      importId,
      status,
      fileName: opts.fileName,
      format,
      listId: list.id,
      columns: source.headers,
      mapping: resolved.mapping as Record<string, string>,
      ignoredColumns: resolved.ignored,
      rows: { total, valid: good.length, bad: badRows.size, duplicate: dupIndexes.size, written, enrolled, skipped: status === 'committed' ? badRows.size : 0 },
      errors: errors.slice(0, MAX_REPORTED),
      errorsTruncated: errors.length > MAX_REPORTED,
      duplicates: findings.slice(0, MAX_REPORTED),
      duplicatesTruncated: findings.length > MAX_REPORTED,
      ms: { read: Math.round(readMs), duplicates: Math.round(dupMs), write: Math.round(writeMs) },
    };
  };
  const record = async (k: Knex, status: BeneficiaryImportReport['status'], written: number) => {
    const [row] = await k('cash_imports')
      .insert({
        kind: 'beneficiaries', list_id: list.id, file_name: opts.fileName, format, status, mapping: JSON.stringify(resolved.mapping),
        legal_basis: opts.basis ?? 'consent', evidence: opts.evidence, rows_total: total, rows_valid: good.length, rows_bad: badRows.size,
        rows_duplicate: dupIndexes.size, rows_written: written, created_by_id: actor.userId ?? (actor.type === 'staff' ? actor.id : null), created_at: now,
      })
      .returning('id');
    return insertedId(row);
  };
  const auditIt = (r: BeneficiaryImportReport) =>
    audit(db, actor, {
      action: r.status === 'dry_run' ? 'cash.import.dry_run' : r.status === 'committed' ? 'cash.import' : 'cash.import.rejected',
      entityType: 'cash_import',
      entityId: r.importId,
      detail: { listId: list.id, format, rows: r.rows.total, valid: r.rows.valid, bad: r.rows.bad, duplicate: r.rows.duplicate, written: r.rows.written, enrolled: r.rows.enrolled },
    });

  if (opts.dryRun || (badRows.size > 0 && !opts.skipBadRows) || good.length === 0) {
    const status = opts.dryRun ? 'dry_run' : 'failed';
    const r = report(await record(knex, status, 0), status, 0, 0, 0);
    await auditIt(r);
    return r;
  }

  const t2 = performance.now();
  const result = await knex.transaction(async (trx) => {
    const importId = await record(trx, 'committed', 0);
    // The numbers' contacts (found or created by the contacts domain), and their cash_programme consent.
    const phones = [...new Set(good.map((g) => g.phone).filter((p): p is string => Boolean(p)))];
    const contactOf = new Map<string, number>();
    for (const part of chunk(phones, 2000)) {
      const refs: AddressRef[] = part.map((p) => ({ medium: 'sms', kind: 'phone', address: p }));
      const found = await findOrCreateContacts(trx, refs, { now });
      for (const p of part) {
        const f = found.get(`sms\u0000${p}`);
        if (f) contactOf.set(p, f.contactId);
      }
    }
    const contactIds = [...new Set(contactOf.values())];
    const asked = new Set<number>();
    const active = new Set<number>();
    for (const part of chunk(contactIds, 500)) {
      for (const id of await trx('consent_state').whereIn('contact_id', part).where('purpose', 'cash_programme').pluck('contact_id')) asked.add(Number(id));
      for (const id of await trx('contacts').whereIn('id', part).where('status', 'active').whereNull('erased_at').pluck('id')) active.add(Number(id));
    }
    const staffUserId = actor.userId ?? (actor.type === 'staff' ? actor.id : null);
    const ref = `import:${importId} ${opts.fileName}`.slice(0, 200);
    for (const id of contactIds) {
      if (asked.has(id) || !active.has(id)) continue;
      await recordConsent(trx, {
        contactId: id, purpose: 'cash_programme', action: 'grant', legalBasis: opts.basis ?? 'consent', channel: 'import', method: 'import',
        evidence: { type: 'import', ref }, staffUserId, at: now,
      });
    }
    // The beneficiaries.
    const ids: number[] = [];
    let enrolled = 0;
    for (const part of chunk(good.map((g, i) => [g, i] as const), 200)) {
      const inserted = await trx('cash_beneficiaries')
        .insert(
          part.map(([g, i]) => {
            const enrol = Boolean(opts.enrol) && !inPairs.has(i);
            if (enrol) enrolled++;
            return {
              list_id: list.id, contact_id: g.phone ? contactOf.get(g.phone) ?? null : null, household_id: g.householdId, household_key: g.householdKey, name: g.name,
              phone: g.phone, admin1: g.admin1, admin2: g.admin2, admin3: g.admin3, household_size: g.householdSize,
              vulnerability: g.vulnerability ? JSON.stringify(g.vulnerability) : null, gender: g.gender, age_group: g.ageGroup,
              status: enrol ? 'enrolled' : 'candidate', source: 'import', import_id: importId, import_row: g.row, status_at: now, created_at: now, updated_at: now,
            };
          }),
        )
        .returning('id');
      ids.push(...inserted.map(insertedId));
    }
    await recordDuplicates(trx, list.id, [
      ...inFile.map((d) => ({ beneficiaryId: ids[d.index], otherId: ids[d.otherIndex], match: d.match, scope: 'file' as const })),
      ...existing.map((m) => ({ beneficiaryId: ids[m.index], otherId: m.beneficiaryId, match: m.match, scope: 'existing' as const })),
    ], now);
    await trx('cash_imports').where('id', importId).update({ rows_written: ids.length });
    return { importId, written: ids.length, enrolled };
  });
  const r = report(result.importId, 'committed', result.written, result.enrolled, performance.now() - t2);
  await auditIt(r);
  return r;
}

export interface CashImportRecord {
  id: number;
  kind: string;
  listId: number | null;
  distributionId: number | null;
  fileName: string;
  format: string;
  status: string;
  rows: { total: number; valid: number; bad: number; duplicate: number; written: number };
  createdAt: string;
}

export async function listImports(knex: Knex, where: { listId?: number; distributionId?: number }, limit = 20): Promise<CashImportRecord[]> {
  const q = knex('cash_imports').orderBy('id', 'desc').limit(limit);
  if (where.listId) q.where('list_id', where.listId);
  if (where.distributionId) q.where('distribution_id', where.distributionId);
  return (await q).map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    kind: String(r.kind),
    listId: r.list_id === null ? null : Number(r.list_id),
    distributionId: r.distribution_id === null ? null : Number(r.distribution_id),
    fileName: String(r.file_name),
    format: String(r.format),
    status: String(r.status),
    rows: { total: Number(r.rows_total), valid: Number(r.rows_valid), bad: Number(r.rows_bad), duplicate: Number(r.rows_duplicate), written: Number(r.rows_written) },
    createdAt: new Date(r.created_at instanceof Date ? r.created_at : Number.isFinite(Number(r.created_at)) ? Number(r.created_at) : String(r.created_at)).toISOString(),
  }));
}
