/**
 * The weekly situation report: this week against last week, people assisted by gender, age group,
 * vulnerability, nationality and region with "not recorded" counts, feedback with sensitive cases as
 * one anonymous total, notable changes; the printable page, CSV and XLSX downloads, stored snapshots
 * (by staff and by the weekly job), and who may do what.
 */
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { createField } from '../../src/contacts/fields.js';
import { openComplaint } from '../../src/complaints/service.js';
import { createLogger } from '../../src/log.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { simulatorSend } from '../../src/simulator/service.js';
import { weeklyReport } from '../../src/reports/weekly.js';
import { addDays, lastCompleteWeek, localDate, mondayOf } from '../../src/reports/period.js';
import { listSnapshots, runWeeklyReportJob } from '../../src/reports/snapshots.js';

const TZ = 'America/Lima';
const DAY = 86_400_000;
let t: TestApp;
let seq = 0;
let today: string;

function msg(from: string, text: string, at = new Date()): ParsedInbound {
  seq++;
  return { channel: 'whatsapp', medium: 'whatsapp', providerId: `weekly-${seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: at };
}
const contactOf = async (phone: string) => Number((await t.db.knex('contact_addresses').where('address', phone).first('contact_id')).contact_id);
const setFields = async (phone: string, fields: Record<string, string>) => t.db.knex('contacts').where('id', await contactOf(phone)).update({ fields: JSON.stringify(fields) });

beforeAll(async () => {
  t = await startTestApp({ DEFAULT_LANGUAGE: 'es', DEFAULT_TIMEZONE: TZ });
  const s = { config: t.config, db: t.db, log: createLogger('silent') };
  today = localDate(new Date(), TZ);
  const knex = t.db.knex;
  await createField(knex, { key: 'gender', label: 'Gender', type: 'choice', choices: ['female', 'male', 'other'] });
  await createField(knex, { key: 'age_group', label: 'Age group', type: 'choice', choices: ['0-17', '18-59', '60+'] });
  await createField(knex, { key: 'nationality', label: 'Nationality', type: 'text' });
  await createField(knex, { key: 'region', label: 'Region', type: 'text' });

  const lastWeek = new Date(Date.now() - 7 * DAY);
  await receive(s, ROUTER_STEPS, [msg('+51911300001', 'hola')]);
  await receive(s, ROUTER_STEPS, [msg('+51911300002', 'hola')]);
  await receive(s, ROUTER_STEPS, [msg('+51911300003', 'hola')]);
  await receive(s, ROUTER_STEPS, [msg('+51911300004', 'hola', lastWeek)]);
  await setFields('+51911300001', { gender: 'female', age_group: '18-59', nationality: 'Venezuela', region: 'Lima' });
  await setFields('+51911300002', { gender: 'male', age_group: '18-59', nationality: 'venezuela', region: 'Tumbes' });
  await setFields('+51911300004', { gender: 'female' });
  // A test contact of the phone simulator: never in the report.
  await simulatorSend(s, SYSTEM, { number: '+51999000002', medium: 'whatsapp', text: 'hola' });
  await t.db.knex('contacts').where('id', await contactOf('+51999000002')).update({ fields: JSON.stringify({ gender: 'other' }) });

  await knex.transaction(async (trx) => {
    await openComplaint(trx, { source: 'whatsapp', category: 'rumour', narrative: 'Dicen que el bono se acaba' });
    await openComplaint(trx, { source: 'web', category: 'sea', narrative: 'Sealed' });
    await openComplaint(trx, { source: 'web', category: 'question', narrative: 'Old question', receivedAt: lastWeek });
  });
});
afterAll(() => t?.close());

describe('weekly report', () => {
  it('compares this week with last week, and disaggregates the people assisted', async () => {
    const r = await weeklyReport(t.db.knex, today, TZ);
    expect(r.week.from).toBe(mondayOf(today));
    expect(r.week.to).toBe(addDays(mondayOf(today), 6));
    expect(r.week.label).toMatch(/^\d{4}-W\d{2}$/);
    const ind = Object.fromEntries(r.indicators.map((i) => [i.key, i]));
    expect(ind.messages_received).toMatchObject({ value: 3, previous: 1, change: 2, changePct: 200, notable: false });
    expect(ind.people_assisted).toMatchObject({ value: 3, previous: 1 });
    expect(ind.feedback_received).toMatchObject({ value: 2, previous: 1 });
    expect(ind.rumours_reported).toMatchObject({ value: 1, previous: 0 });

    const by = Object.fromEntries(r.breakdowns.map((b) => [b.name, b]));
    expect(by.gender).toMatchObject({ key: 'gender', defined: true, total: 3, notRecorded: 1 });
    expect(by.gender.values).toEqual([{ value: 'female', count: 1 }, { value: 'male', count: 1 }]);
    expect(by.age_group.values).toEqual([{ value: '18-59', count: 2 }]);
    // Written two ways, counted as one country.
    expect(by.nationality.values).toEqual([{ value: 'Venezuela', count: 2 }]);
    expect(by.region.values.map((v) => v.value).sort()).toEqual(['Lima', 'Tumbes']);
    expect(by.vulnerability).toMatchObject({ key: 'disability', defined: false, values: [], notRecorded: 3 });

    expect(r.feedback.byCategory).toEqual([
      { category: 'rumour', count: 1, previous: 0 },
      { category: 'question', count: 0, previous: 1 },
    ]);
    expect(r.feedback.sensitive).toBe(1);
    expect(JSON.stringify(r)).not.toMatch(/9113000|999000|bono|Sealed/);
  });

  it('marks a large change as notable', async () => {
    const s = { config: t.config, db: t.db, log: createLogger('silent') };
    for (let i = 0; i < 6; i++) await receive(s, ROUTER_STEPS, [msg('+51911300001', `pregunta ${i}`)]);
    const r = await weeklyReport(t.db.knex, today, TZ);
    const received = r.indicators.find((i) => i.key === 'messages_received')!;
    expect(received).toMatchObject({ value: 9, previous: 1, notable: true });
  });

  it('renders a printable page and CSV/XLSX downloads for anyone with reports.read', async () => {
    await makeUser(t.db, 'viewer', 'weekly-viewer@example.org');
    const c = new Client(t.url);
    await c.login('weekly-viewer@example.org');
    const page = await c.get(`/reports/weekly?week=${today}`);
    expect(page.status).toBe(200);
    expect(page.text_).toMatch(/data-indicator="messages_received">9</);
    expect(page.text_).toContain('data-breakdown="gender"');
    expect(page.text_).not.toContain('action="/reports/weekly/snapshots"'); // a viewer cannot store it
    expect(page.text_).not.toContain('911300');

    const csv = await c.get(`/reports/weekly.csv?week=${today}`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-disposition')).toMatch(/attachment; filename="ayni-weekly-\d{4}-W\d{2}\.csv"/);
    const raw = Buffer.from(await (await fetch(`${t.url}/reports/weekly.csv?week=${today}`, { headers: { cookie: await loginCookie('weekly-viewer@example.org') } })).arrayBuffer());
    expect([...raw.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]); // so that Excel reads it as UTF-8
    expect(csv.text_).toContain('Section,Item,This week,Last week,Change');
    expect(csv.text_).toMatch(/Summary,Messages received,9,1,8/);
    expect(csv.text_).toMatch(/People assisted by Gender,Not recorded,1/);

    const res = await fetch(`${t.url}/reports/weekly.xlsx?week=${today}`, { headers: { cookie: (await loginCookie('weekly-viewer@example.org')) } });
    expect(res.headers.get('content-type')).toContain('spreadsheetml');
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(Buffer.from(await res.arrayBuffer()) as never);
    const summary = wb.getWorksheet('Summary')!;
    const rows = summary.getSheetValues().filter(Boolean).map((r) => (r as unknown[]).slice(1));
    expect(rows).toContainEqual(['Messages received', 9, 1, 8]);

    const es = new Client(t.url);
    await makeUser(t.db, 'editor', 'weekly-es@example.org');
    await es.login('weekly-es@example.org');
    await es.submit('/reports/weekly', '/locale', { locale: 'es', next: '/reports/weekly' });
    const spanish = await es.get(`/reports/weekly.csv?week=${today}`);
    expect(spanish.text_).toMatch(/Resumen,Mensajes recibidos,9,1,8/);

    const bad = await c.get('/reports/weekly?week=2026-13-01');
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('<strong>week</strong>');
  });

  it('stores snapshots: an admin on demand, the weekly job for last week; a viewer cannot', async () => {
    await makeUser(t.db, 'admin', 'weekly-admin@example.org');
    const admin = new Client(t.url);
    await admin.login('weekly-admin@example.org');
    const stored = await admin.submit(`/reports/weekly?week=${today}`, '/reports/weekly/snapshots', { week: today });
    expect(stored.status).toBe(302);
    const where = stored.headers.get('location')!;
    expect(where).toMatch(/^\/reports\/snapshots\/\d+$/);
    const snap = await admin.get(where);
    expect(snap.status).toBe(200);
    expect(snap.text_).toMatch(/data-indicator="messages_received">9</);

    const viewer = new Client(t.url);
    await viewer.login('weekly-viewer@example.org');
    expect((await viewer.submit('/reports/weekly', '/reports/weekly/snapshots', { week: today })).status).toBe(403);

    const job = await runWeeklyReportJob(t.db, t.config, SYSTEM);
    const last = lastCompleteWeek(TZ);
    const list = await listSnapshots(t.db.knex);
    expect(list.data.map((x) => x.from)).toEqual([mondayOf(today), last.fromDate]);
    expect(job.week).toBe(list.data[1].label);
    expect(list.data[1].createdBy).toBe('weekly-report job');
    // Building the same week again replaces its snapshot.
    await runWeeklyReportJob(t.db, t.config, SYSTEM);
    expect((await listSnapshots(t.db.knex)).data).toHaveLength(2);
    const audit = await t.db.knex('audit_events').where('action', 'report.snapshot').count({ n: '*' });
    expect(Number(audit[0].n)).toBe(3);
  });
});

async function loginCookie(email: string): Promise<string> {
  const c = new Client(t.url);
  const res = await c.login(email);
  const cookie = res.headers.getSetCookie().map((x) => x.split(';')[0]).join('; ');
  return cookie;
}
