/**
 * Files for the cash team and its partners: beneficiary exports through named profiles (each
 * recipient gets only the fields it needs; see model.ts EXPORT_PROFILES), and the tables of the
 * PDM report. CSV (UTF-8 with a byte-order mark, so spreadsheet programs read accents) or XLSX.
 * Text that a spreadsheet would run as a formula is defused with a leading apostrophe.
 */
import { stringify } from 'csv-stringify/sync';
import ExcelJS from 'exceljs';
import { z } from 'zod';
import type { Database } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { getDistribution } from './distributions.js';
import { getList, readJsonArray } from './lists.js';
import { BENEFICIARY_STATUSES, EXPORT_PROFILES, exportProfile, type ExportField } from './model.js';

export type FileFormat = 'csv' | 'xlsx';

export interface Sheet {
  name: string;
  header: string[];
  rows: (string | number | null)[][];
}

export interface FileOut {
  filename: string;
  contentType: string;
  body: Buffer;
}

/** A cell a spreadsheet would evaluate (=, @, or + and - not followed by a digit) gets a leading apostrophe. */
export function safeCell(v: string | number | null): string | number {
  if (v === null) return '';
  if (typeof v === 'number') return v;
  return /^[=@\t\r]/.test(v) || /^[+-][^\d]/.test(v) ? `'${v}` : v;
}

export async function tableFile(basename: string, format: FileFormat, sheets: Sheet[]): Promise<FileOut> {
  if (format === 'csv') {
    const parts = sheets.map((s, i) => (sheets.length > 1 ? (i ? '\n' : '') + stringify([[s.name]]) : '') + stringify([s.header, ...s.rows.map((r) => r.map(safeCell))]));
    return { filename: `${basename}.csv`, contentType: 'text/csv; charset=utf-8', body: Buffer.from('\ufeff' + parts.join(''), 'utf8') };
  }
  const wb = new ExcelJS.Workbook();
  for (const s of sheets) {
    const ws = wb.addWorksheet(s.name.slice(0, 31).replace(/[\\/?*[\]:]/g, ' '));
    ws.addRow(s.header).font = { bold: true };
    for (const r of s.rows) ws.addRow(r.map(safeCell));
  }
  const body = Buffer.from(await wb.xlsx.writeBuffer());
  return { filename: `${basename}.xlsx`, contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', body };
}

export const exportRequestSchema = z.object({
  profile: z.enum(EXPORT_PROFILES.map((p) => p.key) as [string, ...string[]]),
  distributionId: z.coerce.number().int().positive().optional(),
  format: z.enum(['csv', 'xlsx']).default('csv'),
  /** Statuses to include (default: the profile's). */
  status: z.enum(BENEFICIARY_STATUSES).optional(),
});

const PAGE = 2000;

/** A list's beneficiaries through an export profile. Audited with the profile, fields and row count. */
export async function exportBeneficiaries(db: Database, actor: Actor, listId: number, input: z.input<typeof exportRequestSchema>): Promise<FileOut & { rows: number }> {
  const v = exportRequestSchema.parse(input);
  const profile = exportProfile(v.profile)!;
  const list = await getList(db.knex, listId);
  let dist: Awaited<ReturnType<typeof getDistribution>> | null = null;
  if (profile.needsDistribution || v.distributionId) {
    if (!v.distributionId) throw new HttpError(400, 'validation_failed', 'The request is not valid', { distributionId: `the ${profile.key} profile needs a distribution (amounts)` });
    dist = await getDistribution(db.knex, v.distributionId);
    if (dist.listId !== listId) throw new HttpError(400, 'validation_failed', 'The request is not valid', { distributionId: 'is a distribution of another list' });
  }
  const statuses = v.status ? [v.status] : [...profile.statuses];
  const fields = profile.fields.filter((f) => dist || !['amount', 'currency', 'transfer_status', 'provider_ref'].includes(f));
  const rows: (string | number | null)[][] = [];
  for (let after = 0; ; ) {
    const q = db.knex('cash_beneficiaries as b').where('b.list_id', listId).whereIn('b.status', statuses).where('b.id', '>', after).orderBy('b.id').limit(PAGE).select('b.*');
    if (dist) {
      // With a distribution: its transfer records (a payment file lists who is to be paid in this round).
      q.join('cash_transfers as t', (j) => j.on('t.beneficiary_id', '=', 'b.id').andOn('t.distribution_id', '=', db.knex.raw('?', [dist!.id])));
      q.select('t.amount as t_amount', 't.status as t_status', 't.provider_ref as t_ref');
    }
    const page = await q;
    for (const r of page) {
      const val: Record<ExportField, string | number | null> = {
        beneficiary_id: toInt(r.id),
        household_id: r.household_id ?? null,
        name: r.name ?? null,
        phone: r.phone ?? null,
        admin1: r.admin1 ?? null,
        admin2: r.admin2 ?? null,
        admin3: r.admin3 ?? null,
        household_size: r.household_size === null || r.household_size === undefined ? null : toInt(r.household_size),
        vulnerability: readJsonArray(r.vulnerability).join('; ') || null,
        gender: r.gender ?? null,
        age_group: r.age_group ?? null,
        status: r.status,
        excluded_reason: r.excluded_reason ?? null,
        amount: dist ? Number(r.t_amount) : null,
        currency: dist ? dist.currency : null,
        transfer_status: dist ? r.t_status : null,
        provider_ref: dist ? (r.t_ref ?? null) : null,
      };
      rows.push(fields.map((f) => val[f]));
    }
    if (page.length < PAGE) break;
    after = toInt(page[page.length - 1].id);
  }
  const stamp = new Date().toISOString().slice(0, 10);
  const file = await tableFile(`beneficiaries-${list.id}-${profile.key}${dist ? `-d${dist.id}` : ''}-${stamp}`, v.format, [{ name: profile.label.en, header: [...fields], rows }]);
  await audit(db, actor, { action: 'cash.export', entityType: 'cash_list', entityId: listId, detail: { profile: profile.key, fields: [...fields], rows: rows.length, distributionId: dist?.id ?? null, format: v.format } });
  return { ...file, rows: rows.length };
}
