/** Exports of a list or segment: columns, CSV and XLSX, erased contacts left out, formula cells neutralised, audit, permission, console, re-import. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import ExcelJS from 'exceljs';
import { startTestApp, Client, makeUser, type TestApp } from '../helpers/app.js';
import { createToken } from '../../src/staff/service.js';
import { SYSTEM, listAudit } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';
import { safeCell } from '../../src/contacts/export.js';
import { runImport } from '../../src/contacts/import.js';

let t: TestApp;
const tokens: Record<string, string> = {};

async function get(path: string, role = 'cash') {
  const res = await fetch(`${t.url}/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[role]}` } });
  return { status: res.status, type: res.headers.get('content-type') ?? '', disposition: res.headers.get('content-disposition') ?? '', bytes: new Uint8Array(await res.arrayBuffer()) };
}
const csvRows = (bytes: Uint8Array) => parse(Buffer.from(bytes).toString('utf8'), { bom: true }) as string[][];

beforeAll(async () => {
  t = await startTestApp();
  for (const role of ['admin', 'cash', 'broadcaster'] as const) {
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `t-${role}`, role })).secret;
    await makeUser(t.db, role);
  }
  const k = t.db.knex;
  const now = new Date('2026-03-01T10:00:00Z');
  await k('contact_fields').insert([
    { key: 'region', label: 'Region', type: 'text', created_at: now },
    { key: 'household_size', label: 'Household size', type: 'number', created_at: now },
  ]);
  const [l] = await k('lists').insert({ key: 'news', name: 'News', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now }).returning('id');
  await k('lists').insert({ key: 'other', name: 'Other', purpose: 'updates', default_language: 'es', created_at: now, updated_at: now });
  const listId = toInt(typeof l === 'object' ? l.id : l);
  const people = [
    { name: 'Ana', status: 'active', fields: { region: 'Lima', household_size: 4 }, phones: { sms: '+51987670001', whatsapp: '+51987670001' }, list: true },
    { name: 'Bruno', status: 'active', fields: { region: 'Tumbes' }, phones: { whatsapp: '+51987670002' }, list: true },
    { name: 'Carla (erased)', status: 'active', fields: { region: 'Lima' }, phones: {}, list: true, erased: true },
    { name: 'Dan', status: 'stopped', fields: { region: 'Lima' }, phones: { sms: '+51987670004' }, list: true },
    { name: '=HYPERLINK("http://x.example","click")', status: 'active', fields: { region: 'Lima' }, phones: { sms: '+51987670005' }, list: true },
    { name: 'Fay', status: 'active', fields: { region: 'Lima' }, phones: { sms: '+51987670006' }, list: false },
  ];
  for (const p of people) {
    const [c] = await k('contacts').insert({ name: p.name, status: p.status, fields: JSON.stringify(p.fields), erased_at: p.erased ? now : null, created_at: now, updated_at: now }).returning('id');
    const id = toInt(typeof c === 'object' ? c.id : c);
    for (const [channel, address] of Object.entries(p.phones)) await k('contact_addresses').insert({ contact_id: id, channel, kind: 'phone', address, created_at: now });
    if (p.list) await k('subscriptions').insert({ list_id: listId, contact_id: id, status: 'active', joined_at: now });
  }
  await k('segments').insert({ key: 'lima', name: 'Lima', query: 'region = "Lima"', created_at: now, updated_at: now });
});
afterAll(() => t?.close());

describe('GET /api/v1/exports', () => {
  it('exports a list as CSV with the chosen columns, never an erased contact', async () => {
    const r = await get('/exports?list=news&columns=phone,whatsapp,name,region,household_size,status,joined');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/csv/);
    expect(r.disposition).toMatch(/^attachment; filename="contacts-list-news-\d{4}-\d{2}-\d{2}\.csv"$/);
    expect(csvRows(r.bytes)).toEqual([
      ['phone', 'whatsapp', 'name', 'region', 'household_size', 'status', 'joined'],
      ['+51987670001', '+51987670001', 'Ana', 'Lima', '4', 'active', '2026-03-01T10:00:00.000Z'],
      ['+51987670002', '+51987670002', 'Bruno', 'Tumbes', '', 'active', '2026-03-01T10:00:00.000Z'],
      ['+51987670004', '', 'Dan', 'Lima', '', 'stopped', '2026-03-01T10:00:00.000Z'],
      ['+51987670005', '', `'=HYPERLINK("http://x.example","click")`, 'Lima', '', 'active', '2026-03-01T10:00:00.000Z'],
    ]);
  });

  it('exports a segment, a list within a segment, active contacts only', async () => {
    const seg = csvRows((await get('/exports?segment=lima&columns=name')).bytes).slice(1).flat();
    expect(seg).toEqual(['Ana', 'Dan', `'=HYPERLINK("http://x.example","click")`, 'Fay']);
    const active = csvRows((await get('/exports?segment=lima&columns=name&active_only=true')).bytes).slice(1).flat();
    expect(active).toEqual(['Ana', `'=HYPERLINK("http://x.example","click")`, 'Fay']);
    const both = csvRows((await get('/exports?list=news&segment=lima&columns=name&active_only=1')).bytes).slice(1).flat();
    expect(both).toEqual(['Ana', `'=HYPERLINK("http://x.example","click")`]);
    const query = csvRows((await get(`/exports?query=${encodeURIComponent('household_size >= 4')}&columns=name`)).bytes).slice(1).flat();
    expect(query).toEqual(['Ana']);
  });

  it('exports XLSX', async () => {
    const r = await get('/exports?list=news&columns=phone,name&format=xlsx');
    expect(r.type).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(Buffer.from(r.bytes) as never);
    const rows: unknown[][] = [];
    wb.worksheets[0].eachRow((row) => rows.push((row.values as unknown[]).slice(1)));
    expect(rows[0]).toEqual(['phone', 'name']);
    expect(rows.slice(1).map((x) => x[1])).toEqual(['Ana', 'Bruno', 'Dan', `'=HYPERLINK("http://x.example","click")`]);
    expect(rows[1][0]).toBe('+51987670001');
  });

  it('audits who exported what and how many rows, without personal data', async () => {
    await get('/exports?list=news&columns=phone,name');
    const [event] = await listAudit(t.db, { action: 'contacts.export', limit: 1 });
    expect(event).toMatchObject({ actorLabel: 'token:t-cash', entityType: 'list', entityId: 'news' });
    expect(event.detail).toMatchObject({ list: 'news', segment: null, rows: 4, columns: ['phone', 'name'], format: 'csv' });
    expect(JSON.stringify(event.detail)).not.toMatch(/9876|Ana/);
  });

  it('needs contacts.export, a list or segment, and known columns', async () => {
    expect((await get('/exports?list=news', 'broadcaster')).status).toBe(403);
    const none = await get('/exports?columns=name');
    expect(none.status).toBe(400);
    const bad = await get('/exports?list=news&columns=phone,regoin');
    expect(bad.status).toBe(400);
    expect(JSON.parse(Buffer.from(bad.bytes).toString()).error.details.columns).toMatch(/unknown column regoin; did you mean "region"\?/);
    expect((await get('/exports?segment=nope')).status).toBe(404);
    const badQuery = JSON.parse(Buffer.from((await get('/exports?query=regoin%20%3D%20%22x%22')).bytes).toString());
    expect(badQuery.error.details.suggestion).toBe('region');
  });

  it('gives a file the importer takes back: the same people merge', async () => {
    const file = (await get('/exports?list=news&columns=phone,name,region&active_only=true')).bytes;
    const report = await runImport({ db: t.db, config: t.config }, SYSTEM, { list: 'other', fileName: 'back.csv', content: file, basis: 'consent', evidence: 'Re-import of an export for the test', dryRun: true });
    expect(report.mapping).toEqual({ phone: 'phone', name: 'name', region: 'region' });
    expect(report.rows).toMatchObject({ total: 3, valid: 3, merged: 3, new: 0, bad: 0 });
  });

  it('neutralises formula cells but keeps phone numbers', () => {
    expect(safeCell('=1+1')).toBe("'=1+1");
    expect(safeCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(safeCell('+51987670001')).toBe('+51987670001');
    expect(safeCell('-3')).toBe('-3');
    expect(safeCell('-cmd|x')).toBe("'-cmd|x");
    expect(safeCell('Lima')).toBe('Lima');
  });
});

describe('exports console', () => {
  it('offers a form and downloads the file', async () => {
    const c = new Client(t.url);
    await c.login('cash@example.org');
    const page = await c.get('/exports?segment=lima');
    expect(page.status).toBe(200);
    expect(page.text_).toContain('<label for="export-list">');
    expect(page.text_).toMatch(/<option value="lima" selected>/);
    const res = await c.get('/exports/download?list=news&columns=phone&columns=name&format=csv');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/attachment/);
    expect(csvRows(new TextEncoder().encode(res.text_))[0]).toEqual(['phone', 'name']);
    const bad = await c.get('/exports/download?columns=name');
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('choose a list or a segment');
    const broadcaster = new Client(t.url);
    await broadcaster.login('broadcaster@example.org');
    expect((await broadcaster.get('/exports')).status).toBe(403);
  });
});
