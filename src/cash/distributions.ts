/**
 * Distributions (cash rounds) and their transfer records.
 *
 * A distribution names its list, date, amount and currency, modality (cash, mobile money, voucher,
 * card) and provider. Creating it makes one transfer record per enrolled beneficiary (pending, the
 * distribution's amount); beneficiaries enrolled later are added with `addEnrolled`. The provider's
 * report (CSV/XLSX keyed by household id or phone) updates the records: amount, status (pending,
 * paid, failed, returned), date and reference — dry run first, with per-row errors.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import {
  cellText, chunk, importInvalid, insertedId, isBlank, MAX_REPORTED, MAX_ROWS, openFile, parseAmount, parseDay, phoneReader, resolveColumns, short,
  type Cell, type Column, type ImportFormat, type RowError,
} from './files.js';
import { getList } from './lists.js';
import { householdKey, MODALITIES, TRANSFER_STATUSES, type Modality, type TransferStatus } from './model.js';

const staffId = (a: Actor): number | null => a.userId ?? (a.type === 'staff' ? a.id : null);
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'must be a date such as 2026-11-30' }).refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)), { message: 'is not a real date' });

export const pdmSettingsSchema = z.object({
  /** Monitor this distribution (default true). */
  enabled: z.boolean().optional(),
  /** Days after the distribution date (default CASH_PDM_DAYS). */
  days: z.number().int().min(0).max(365).nullish(),
  /** Everyone, or a random sample (default). */
  sampling: z.enum(['sample', 'all']).optional(),
  confidence: z.number().min(50).max(99.9).nullish(),
  margin: z.number().min(0.5).max(50).nullish(),
  reminderHours: z.number().int().min(1).max(24 * 14).nullish(),
  maxReminders: z.number().int().min(0).max(5).nullish(),
});

export const distributionInputSchema = z.object({
  listId: z.number().int().positive(),
  name: z.string().trim().min(1).max(200),
  date: day,
  amount: z.number().positive().max(1e11).refine((n) => Math.round(n * 100) === n * 100 || Math.abs(Math.round(n * 100) - n * 100) < 1e-6, { message: 'at most 2 decimals' }),
  currency: z.string().trim().toUpperCase().regex(/^[A-Z]{3}$/, { message: 'must be a three-letter currency code such as PEN or USD' }),
  modality: z.enum(MODALITIES),
  provider: z.string().trim().max(200).nullish(),
  pdm: pdmSettingsSchema.optional(),
});
export const distributionPatchSchema = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  date: day.optional(),
  provider: z.string().trim().max(200).nullish(),
  pdm: pdmSettingsSchema.optional(),
});

export interface Distribution {
  id: number;
  listId: number;
  listName: string;
  name: string;
  date: string;
  amount: number;
  currency: string;
  modality: Modality;
  provider: string | null;
  pdm: {
    enabled: boolean;
    days: number | null;
    sampling: 'sample' | 'all';
    confidence: number | null;
    margin: number | null;
    reminderHours: number | null;
    maxReminders: number | null;
    status: 'pending' | 'starting' | 'running' | 'off';
    population: number | null;
    sampleSize: number | null;
    startedAt: string | null;
  };
  transfers: { total: number; pending: number; paid: number; failed: number; returned: number; paidAmount: number };
  createdAt: string;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

async function transferCounts(knex: Knex, ids: number[]): Promise<Map<number, Distribution['transfers']>> {
  const out = new Map<number, Distribution['transfers']>();
  for (const id of ids) out.set(id, { total: 0, pending: 0, paid: 0, failed: 0, returned: 0, paidAmount: 0 });
  if (!ids.length) return out;
  const rows = await knex('cash_transfers').whereIn('distribution_id', ids).groupBy('distribution_id', 'status').select('distribution_id', 'status', knex.raw('count(*) as n'), knex.raw('sum(amount) as a'));
  for (const r of rows) {
    const c = out.get(toInt(r.distribution_id))!;
    const n = toInt(r.n);
    if ((TRANSFER_STATUSES as readonly string[]).includes(r.status)) c[r.status as TransferStatus] = n;
    c.total += n;
    if (r.status === 'paid') c.paidAmount = Math.round(Number(r.a ?? 0) * 100) / 100;
  }
  return out;
}

function readDistribution(r: Record<string, unknown>, transfers: Distribution['transfers']): Distribution {
  return {
    id: toInt(r.id),
    listId: toInt(r.list_id),
    listName: String(r.list_name ?? ''),
    name: String(r.name),
    date: String(r.date),
    amount: Number(r.amount),
    currency: String(r.currency),
    modality: r.modality as Modality,
    provider: (r.provider as string | null) ?? null,
    pdm: {
      enabled: toBool(r.pdm_enabled),
      days: num(r.pdm_days),
      sampling: r.pdm_sampling as 'sample' | 'all',
      confidence: num(r.pdm_confidence),
      margin: num(r.pdm_margin),
      reminderHours: num(r.pdm_reminder_hours),
      maxReminders: num(r.pdm_max_reminders),
      status: r.pdm_status as Distribution['pdm']['status'],
      population: num(r.pdm_population),
      sampleSize: num(r.pdm_sample_size),
      startedAt: toDateOrNull(r.pdm_started_at)?.toISOString() ?? null,
    },
    transfers,
    createdAt: toDate(r.created_at).toISOString(),
  };
}

const base = (knex: Knex) => knex('cash_distributions as d').join('cash_lists as l', 'l.id', 'd.list_id').select('d.*', 'l.name as list_name');

export async function listDistributions(knex: Knex, opts: { listId?: number; before?: number; limit?: number } = {}): Promise<{ data: Distribution[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const q = base(knex).orderBy('d.id', 'desc').limit(limit);
  if (opts.listId) q.where('d.list_id', opts.listId);
  if (opts.before) q.where('d.id', '<', opts.before);
  const rows = await q;
  const counts = await transferCounts(knex, rows.map((r: Record<string, unknown>) => toInt(r.id)));
  const data = rows.map((r: Record<string, unknown>) => readDistribution(r, counts.get(toInt(r.id))!));
  return { data, next: data.length === limit ? data[data.length - 1].id : null };
}

export async function getDistribution(knex: Knex, id: number): Promise<Distribution> {
  const row = await base(knex).where('d.id', id).first();
  if (!row) throw notFound(`There is no distribution ${id}`);
  return readDistribution(row, (await transferCounts(knex, [id])).get(id)!);
}

function pdmColumns(p: z.infer<typeof pdmSettingsSchema> | undefined): Record<string, unknown> {
  if (!p) return {};
  const out: Record<string, unknown> = {};
  if (p.enabled !== undefined) out.pdm_enabled = p.enabled;
  if (p.days !== undefined) out.pdm_days = p.days;
  if (p.sampling !== undefined) out.pdm_sampling = p.sampling;
  if (p.confidence !== undefined) out.pdm_confidence = p.confidence;
  if (p.margin !== undefined) out.pdm_margin = p.margin;
  if (p.reminderHours !== undefined) out.pdm_reminder_hours = p.reminderHours;
  if (p.maxReminders !== undefined) out.pdm_max_reminders = p.maxReminders;
  return out;
}

/** Adds a pending transfer for each enrolled beneficiary of the list that has none in this distribution. Returns how many. */
export async function addEnrolled(knex: Knex, distributionId: number, now = new Date()): Promise<number> {
  const d = await knex('cash_distributions').where('id', distributionId).first('id', 'list_id', 'amount');
  if (!d) throw notFound(`There is no distribution ${distributionId}`);
  const ids: number[] = (
    await knex('cash_beneficiaries as b')
      .where('b.list_id', d.list_id)
      .where('b.status', 'enrolled')
      .whereNotExists(function (this: Knex.QueryBuilder) {
        this.select(knex.raw('1')).from('cash_transfers as t').where('t.distribution_id', distributionId).whereRaw('t.beneficiary_id = b.id');
      })
      .orderBy('b.id')
      .pluck('b.id')
  ).map(Number);
  for (const part of chunk(ids, 300)) {
    await knex('cash_transfers').insert(part.map((bid) => ({ distribution_id: distributionId, beneficiary_id: bid, amount: d.amount, status: 'pending', created_at: now, updated_at: now })));
  }
  return ids.length;
}

export async function createDistribution(db: Database, actor: Actor, input: z.input<typeof distributionInputSchema>): Promise<Distribution> {
  const v = distributionInputSchema.parse(input);
  const list = await getList(db.knex, v.listId);
  if (list.archivedAt) throw new HttpError(409, 'conflict', 'The list is archived', { listId: 'is archived' });
  if (list.counts.enrolled === 0) throw new HttpError(409, 'conflict', 'The list has nobody enrolled', { listId: 'enrol beneficiaries before recording a distribution' });
  const now = new Date();
  const id = await db.knex.transaction(async (trx) => {
    const [row] = await trx('cash_distributions')
      .insert({
        list_id: v.listId, name: v.name, date: v.date, amount: v.amount, currency: v.currency, modality: v.modality, provider: v.provider ?? null,
        pdm_sampling: 'sample', pdm_status: 'pending', pdm_enabled: true, ...pdmColumns(v.pdm), created_by_id: staffId(actor), created_at: now, updated_at: now,
      })
      .returning('id');
    const newId = insertedId(row);
    await addEnrolled(trx, newId, now);
    return newId;
  });
  const d = await getDistribution(db.knex, id);
  await audit(db, actor, { action: 'cash.distribution.create', entityType: 'cash_distribution', entityId: id, detail: { listId: v.listId, transfers: d.transfers.total, modality: v.modality } });
  return d;
}

export async function updateDistribution(db: Database, actor: Actor, id: number, input: z.input<typeof distributionPatchSchema>): Promise<Distribution> {
  const v = distributionPatchSchema.parse(input);
  const d = await getDistribution(db.knex, id);
  if (v.pdm && d.pdm.status !== 'pending' && d.pdm.status !== 'off') {
    throw new HttpError(409, 'conflict', 'The monitoring has started; its settings can no longer change', { pdm: `status ${d.pdm.status}` });
  }
  const patch: Record<string, unknown> = { updated_at: new Date(), ...pdmColumns(v.pdm) };
  if (v.name !== undefined) patch.name = v.name;
  if (v.date !== undefined) patch.date = v.date;
  if (v.provider !== undefined) patch.provider = v.provider ?? null;
  if (v.pdm?.enabled !== undefined && (d.pdm.status === 'pending' || d.pdm.status === 'off')) patch.pdm_status = v.pdm.enabled ? 'pending' : 'off';
  await db.knex('cash_distributions').where('id', id).update(patch);
  await audit(db, actor, { action: 'cash.distribution.update', entityType: 'cash_distribution', entityId: id, detail: { changed: Object.keys(v) } });
  return getDistribution(db.knex, id);
}

// ------------------------------------------------------------------------------------ transfers

export interface Transfer {
  id: number;
  beneficiaryId: number;
  householdId: string | null;
  name: string | null;
  phone: string | null;
  admin1: string | null;
  amount: number;
  status: TransferStatus;
  providerRef: string | null;
  paidOn: string | null;
  updatedAt: string;
}

export async function listTransfers(knex: Knex, distributionId: number, opts: { status?: TransferStatus; before?: number; limit?: number } = {}): Promise<{ data: Transfer[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
  const q = knex('cash_transfers as t')
    .join('cash_beneficiaries as b', 'b.id', 't.beneficiary_id')
    .where('t.distribution_id', distributionId)
    .orderBy('t.id', 'desc')
    .limit(limit)
    .select('t.*', 'b.household_id', 'b.name', 'b.phone', 'b.admin1');
  if (opts.status) q.where('t.status', opts.status);
  if (opts.before) q.where('t.id', '<', opts.before);
  const data = (await q).map((r: Record<string, unknown>) => ({
    id: toInt(r.id),
    beneficiaryId: toInt(r.beneficiary_id),
    householdId: (r.household_id as string | null) ?? null,
    name: (r.name as string | null) ?? null,
    phone: (r.phone as string | null) ?? null,
    admin1: (r.admin1 as string | null) ?? null,
    amount: Number(r.amount),
    status: r.status as TransferStatus,
    providerRef: (r.provider_ref as string | null) ?? null,
    paidOn: (r.paid_on as string | null) ?? null,
    updatedAt: toDate(r.updated_at).toISOString(),
  }));
  return { data, next: data.length === limit ? data[data.length - 1].id : null };
}

// ------------------------------------------------------------------------ provider report import

export const TRANSFER_TARGETS = ['household_id', 'phone', 'amount', 'status', 'date', 'reference'] as const;
type TTarget = (typeof TRANSFER_TARGETS)[number];
export const TRANSFER_GUESSES: Record<TTarget, string[]> = {
  household_id: ['householdid', 'household', 'hhid', 'idhogar', 'hogar', 'codigohogar', 'familyid', 'caseid', 'beneficiaryid'],
  phone: ['phone', 'phonenumber', 'telefono', 'tel', 'celular', 'movil', 'mobile', 'msisdn', 'numero', 'wallet', 'cuenta'],
  amount: ['amount', 'monto', 'importe', 'valor', 'value', 'sum', 'paidamount', 'montopagado'],
  status: ['status', 'estado', 'result', 'resultado', 'paymentstatus', 'estadopago'],
  date: ['date', 'fecha', 'paidon', 'paymentdate', 'fechapago', 'fechadepago'],
  reference: ['reference', 'ref', 'referencia', 'transactionid', 'txid', 'transaction', 'operacion', 'nrooperacion', 'voucher', 'codigo'],
};

/** Words a provider may use for each status, compared lower case without accents or spaces. */
const STATUS_WORDS: Record<TransferStatus, string[]> = {
  paid: ['paid', 'pagado', 'pagada', 'success', 'successful', 'succeeded', 'completed', 'complete', 'ok', 'exitoso', 'exitosa', 'cobrado', 'cobrada', 'delivered', 'entregado', 'done', 'disbursed', 'desembolsado'],
  failed: ['failed', 'fail', 'fallido', 'fallida', 'error', 'rejected', 'rechazado', 'rechazada', 'declined', 'cancelled', 'canceled', 'anulado', 'anulada'],
  returned: ['returned', 'devuelto', 'devuelta', 'reversed', 'revertido', 'refunded', 'reembolsado', 'expired', 'vencido', 'uncollected', 'nocobrado', 'nocobrada'],
  pending: ['pending', 'pendiente', 'processing', 'enproceso', 'inprogress', 'queued', 'sent', 'enviado'],
};
const STATUS_OF = new Map<string, TransferStatus>(Object.entries(STATUS_WORDS).flatMap(([s, ws]) => ws.map((w) => [w, s as TransferStatus] as const)));

export const transferImportSchema = z.object({
  distributionId: z.number().int().positive(),
  fileName: z.string().trim().min(1).max(255).refine((n) => !/[\\/\u0000-\u001f]/.test(n), { message: 'a file name only, without folders' }),
  format: z.enum(['csv', 'xlsx']).optional(),
  mapping: z.record(z.string().trim().min(1).max(64), z.string().trim().min(1).max(200)).optional(),
  /** Which column finds the beneficiary (default: household_id when the file has it, else phone). */
  key: z.enum(['household_id', 'phone']).optional(),
  dryRun: z.boolean(),
  skipBadRows: z.boolean().optional(),
});
export type TransferImportInput = z.input<typeof transferImportSchema> & { content: Uint8Array | string };

export interface TransferImportReport {
  importId: number;
  status: 'dry_run' | 'committed' | 'failed';
  fileName: string;
  format: ImportFormat;
  distributionId: number;
  key: 'household_id' | 'phone';
  columns: string[];
  mapping: Record<string, string>;
  ignoredColumns: string[];
  rows: { total: number; valid: number; bad: number; updated: number; skipped: number };
  /** Valid rows by the status they set. */
  statuses: Record<TransferStatus, number>;
  /** Transfers of the distribution the file does not mention. */
  notInFile: number;
  errors: RowError[];
  errorsTruncated: boolean;
}

interface TransferRow {
  row: number;
  transferId: number;
  amount: number | null;
  status: TransferStatus;
  date: string | null;
  reference: string | null;
}

/** Dry run or commit of a provider's payment report into a distribution's transfer records. Audited. */
export async function importTransfers(services: { db: Database; config: Pick<Config, 'DEFAULT_COUNTRY'> }, actor: Actor, input: TransferImportInput): Promise<TransferImportReport> {
  const parsed = transferImportSchema.safeParse({ ...input, content: undefined });
  if (!parsed.success) throw importInvalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])), 'The import request is not valid');
  const opts = parsed.data;
  const { db } = services;
  const knex = db.knex;
  const dist = await getDistribution(knex, opts.distributionId);
  const { format, source } = await openFile(opts.fileName, input.content, opts.format);
  const resolved = resolveColumns(source.headers, opts.mapping, TRANSFER_GUESSES);
  const cols = resolved.columns;
  const key = opts.key ?? (cols.household_id ? 'household_id' : 'phone');
  const problems: Record<string, string> = {};
  if (!cols[key]) problems[`mapping.${key}`] = `no column holds the ${key === 'phone' ? 'phone numbers' : 'household ids'} that find each beneficiary (the columns are ${source.headers.filter(Boolean).join(', ')})`;
  if (!cols.status) problems['mapping.status'] = `no column holds the payment status (the columns are ${source.headers.filter(Boolean).join(', ')})`;
  if (Object.keys(problems).length) throw importInvalid(problems, 'The column mapping does not fit the file');

  // The distribution's transfers by household key and by phone (a number shared by two households is ambiguous).
  const byKey = new Map<string, number[]>();
  const rows = await knex('cash_transfers as t').join('cash_beneficiaries as b', 'b.id', 't.beneficiary_id').where('t.distribution_id', dist.id).select('t.id', 'b.household_key', 'b.phone');
  for (const r of rows) {
    const k = key === 'phone' ? (r.phone as string | null) : (r.household_key as string | null);
    if (!k) continue;
    byKey.set(k, [...(byKey.get(k) ?? []), toInt(r.id)]);
  }

  const keyCol = cols[key]!;
  const phoneOf = phoneReader(services.config.DEFAULT_COUNTRY);
  const errors: RowError[] = [];
  const bad = new Set<number>();
  const good: TransferRow[] = [];
  const seen = new Map<number, number>();
  let total = 0;
  const fail = (row: number, c: Column | undefined, value: Cell, reason: string) => {
    errors.push({ row, column: c ? c.header : null, value: short(value), reason });
    bad.add(row);
  };
  for await (const batch of source.rows) {
    for (const { row, cells } of batch) {
      if (cells.every(isBlank)) continue;
      total++;
      if (total > MAX_ROWS) throw importInvalid({ file: `the file has more than ${MAX_ROWS.toLocaleString('en')} rows: split it` });
      const before = errors.length;
      const rawKey = cells[keyCol.index] ?? null;
      let transferId: number | null = null;
      if (isBlank(rawKey)) fail(row, keyCol, rawKey, `the ${key === 'phone' ? 'phone number' : 'household id'} is missing`);
      else {
        let k: string | null = null;
        if (key === 'phone') {
          const p = phoneOf(rawKey);
          if (p.ok) k = p.e164;
          else fail(row, keyCol, rawKey, p.reason);
        } else k = householdKey(cellText(rawKey));
        if (k !== null) {
          const found = byKey.get(k) ?? [];
          if (found.length === 0) fail(row, keyCol, rawKey, `no beneficiary of this distribution has this ${key === 'phone' ? 'phone number' : 'household id'}`);
          else if (found.length > 1) fail(row, keyCol, rawKey, `${found.length} beneficiaries of this distribution share this phone number: key the report by household id`);
          else transferId = found[0];
        }
      }
      const rawStatus = cells[cols.status!.index] ?? null;
      const status = STATUS_OF.get(cellText(rawStatus).normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z]/g, ''));
      if (!status) fail(row, cols.status, rawStatus, `not a payment status: use paid, failed, returned or pending (or the provider's words for them, such as pagado, rechazado, devuelto)`);
      let amount: number | null = null;
      if (cols.amount) {
        const raw = cells[cols.amount.index] ?? null;
        if (!isBlank(raw)) {
          amount = parseAmount(raw);
          if (amount === null || amount < 0) fail(row, cols.amount, raw, 'not an amount such as 150.00');
        }
      }
      let date: string | null = null;
      if (cols.date) {
        const raw = cells[cols.date.index] ?? null;
        if (!isBlank(raw)) {
          date = parseDay(raw);
          if (!date) fail(row, cols.date, raw, 'not a date: write it as YYYY-MM-DD or DD/MM/YYYY');
        }
      }
      let reference: string | null = null;
      if (cols.reference) {
        reference = cellText(cells[cols.reference.index] ?? null) || null;
        if (reference && reference.length > 100) fail(row, cols.reference, reference, 'the reference is longer than 100 characters');
      }
      if (transferId !== null) {
        const first = seen.get(transferId);
        if (first !== undefined) fail(row, keyCol, rawKey, `the same beneficiary as row ${first}`);
        else seen.set(transferId, row);
      }
      if (errors.length === before && transferId !== null && status) good.push({ row, transferId, amount, status, date, reference });
    }
  }
  if (total === 0) throw importInvalid({ file: 'the file has a header but no rows' });
  const statuses = Object.fromEntries(TRANSFER_STATUSES.map((s) => [s, 0])) as Record<TransferStatus, number>;
  for (const g of good) statuses[g.status]++;
  const mentioned = new Set(good.map((g) => g.transferId));
  for (const r of seen.keys()) mentioned.add(r);
  const now = new Date();
  const record = async (k: Knex, status: TransferImportReport['status'], written: number) => {
    const [row] = await k('cash_imports')
      .insert({
        kind: 'transfers', list_id: dist.listId, distribution_id: dist.id, file_name: opts.fileName, format, status, mapping: JSON.stringify(resolved.mapping),
        rows_total: total, rows_valid: good.length, rows_bad: bad.size, rows_duplicate: 0, rows_written: written, created_by_id: staffId(actor), created_at: now,
      })
      .returning('id');
    return insertedId(row);
  };
  const report = (importId: number, status: TransferImportReport['status'], updated: number): TransferImportReport => {
    errors.sort((a, b) => a.row - b.row);
    return {
      importId, status, fileName: opts.fileName, format, distributionId: dist.id, key, columns: source.headers, mapping: resolved.mapping as Record<string, string>,
      ignoredColumns: resolved.ignored, rows: { total, valid: good.length, bad: bad.size, updated, skipped: status === 'committed' ? bad.size : 0 },
      statuses, notInFile: rows.length - mentioned.size, errors: errors.slice(0, MAX_REPORTED), errorsTruncated: errors.length > MAX_REPORTED,
    };
  };
  let out: TransferImportReport;
  if (opts.dryRun || (bad.size > 0 && !opts.skipBadRows) || good.length === 0) {
    const status = opts.dryRun ? 'dry_run' : 'failed';
    out = report(await record(knex, status, 0), status, 0);
  } else {
    out = await knex.transaction(async (trx) => {
      const importId = await record(trx, 'committed', good.length);
      for (const g of good) {
        const patch: Record<string, unknown> = { status: g.status, import_id: importId, updated_at: now };
        if (g.amount !== null) patch.amount = g.amount;
        if (g.date !== null) patch.paid_on = g.date;
        if (g.reference !== null) patch.provider_ref = g.reference;
        await trx('cash_transfers').where('id', g.transferId).update(patch);
      }
      return report(importId, 'committed', good.length);
    });
  }
  await audit(db, actor, {
    action: out.status === 'dry_run' ? 'cash.transfers.import_dry_run' : out.status === 'committed' ? 'cash.transfers.import' : 'cash.transfers.import_rejected',
    entityType: 'cash_distribution',
    entityId: dist.id,
    detail: { importId: out.importId, rows: total, valid: good.length, bad: bad.size, updated: out.rows.updated, key },
  });
  return out;
}
