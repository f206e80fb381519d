/**
 * The cash story end to end, over the API and the real messaging pipeline: an enquirer writes in
 * over SMS, staff record their consent for the cash programme, they become a candidate (segment
 * query; a contact without that consent is left out), are enrolled, receive a distribution (the
 * provider's report marks them paid), get the PDM survey 28 days later (the scheduler's clock is
 * given: 27 days after, nothing), answer it over SMS through the router and the simulator, and
 * appear in the report. Their answer "asked to pay" opens a sensitive complaint that only a focal
 * point can see; another recipient who did not receive the transfer asks for a complaint and is on
 * the follow-up list.
 */
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { runPdmScheduler, addDays, localDay } from '../../src/cash/pdm.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import { SYSTEM } from '../../src/staff/audit.js';
import type { Role } from '../../src/staff/roles.js';
import { createToken } from '../../src/staff/service.js';
import { toInt } from '../../src/db/values.js';
import { readJsonArray } from '../../src/cash/lists.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let channels: ChannelRegistry;
const tokens = {} as Record<Role, string>;
const api = (role: Role, method: string, path: string, json?: unknown) => new Client(t.url).request(method, `/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[role]}` }, json });
const ok = async (role: Role, method: string, path: string, json?: unknown) => {
  const res = await api(role, method, path, json);
  expect(res.status, `${method} ${path}: ${res.text_}`).toBeLessThan(300);
  return JSON.parse(res.text_) as { data: any } & Record<string, any>;
};
const services = () => ({ config: t.config, db: t.db, log: createLogger('silent') });

const ENQUIRER = '+51987100001';
const NO_CASH_CONSENT = '+51987100002';
const NOT_RECEIVED = '+51987100003';

/** What the person sends by SMS, through the simulator and the real inbound pipeline. */
async function text(from: string, body: string): Promise<string> {
  const r = await receive(services(), ROUTER_STEPS, [channels.simulator.sms.inbound({ from, text: body })]);
  return r.routes[0];
}

/** Sends what is queued through the dispatcher to the simulator; returns the texts a phone received since `from`. */
async function phone(number: string, from = 0): Promise<string[]> {
  await new Dispatcher({ db: t.db, config: t.config, log: createLogger('silent'), adapters: channels.all, pollMs: 10, pairRate: false }).runUntilIdle();
  return channels.simulator.store.sent('sms', number).slice(from).map((m) => m.text);
}

async function contactOf(number: string): Promise<number> {
  const row = await t.db.knex('contact_addresses').where({ address: number }).first('contact_id');
  return toInt(row.contact_id);
}

let listId = 0;
let distributionId = 0;
let distributionDate = '';

beforeAll(async () => {
  t = await startTestApp();
  channels = buildChannels(t.config);
  for (const role of ['admin', 'cash', 'complaints', 'focal_point', 'viewer'] as Role[]) {
    await makeUser(t.db, role);
    tokens[role] = (await createToken(t.db, SYSTEM, { name: `${role} token`, role })).secret;
  }
});
afterAll(async () => {
  await channels?.close();
  await t?.close();
});

describe('from enquiry to PDM report', () => {
  it('an enquirer who consented becomes a candidate; one who did not is left out', async () => {
    for (const n of [ENQUIRER, NO_CASH_CONSENT, NOT_RECEIVED]) await text(n, 'Hola, quisiera informacion sobre la ayuda economica');
    // The team asked each enquirer, with their authorisation recorded by the operator (the second one said no).
    for (const n of [ENQUIRER, NOT_RECEIVED]) {
      await ok('admin', 'POST', `/contacts/${await contactOf(n)}/consents`, { purpose: 'cash_programme', action: 'grant', channel: 'phone' });
    }
    listId = (await ok('cash', 'POST', '/cash/lists', { name: 'Tumbes noviembre' })).data.id;

    const spec = { query: 'channel = "sms"' };
    const preview = await ok('cash', 'POST', `/cash/lists/${listId}/candidates/preview`, spec);
    expect(preview.data).toEqual({ count: 2, possibleDuplicates: 0 });
    const added = await ok('cash', 'POST', `/cash/lists/${listId}/candidates`, spec);
    expect(added.data).toEqual({ added: 2, duplicates: 0 });
    // Confirming again adds nobody twice.
    expect((await ok('cash', 'POST', `/cash/lists/${listId}/candidates`, spec)).data).toEqual({ added: 0, duplicates: 0 });

    const list = await ok('cash', 'GET', `/cash/lists/${listId}/beneficiaries`);
    expect(list.data.map((b: any) => [b.phone, b.status, b.source]).sort()).toEqual([[ENQUIRER, 'candidate', 'segment'], [NOT_RECEIVED, 'candidate', 'segment']]);
    const audited = await t.db.knex('audit_events').where({ action: 'cash.candidates.add', entity_id: String(listId) }).first('detail');
    expect(JSON.parse(audited.detail)).toMatchObject({ added: 2 });
  });

  it('is enrolled, and the list exports for the payment provider carry only its fields', async () => {
    const r = await ok('cash', 'POST', `/cash/lists/${listId}/status`, { from: 'candidate', status: 'enrolled' });
    expect(r.data).toEqual({ changed: 2, refused: [] });
    const excluded = await api('cash', 'POST', `/cash/lists/${listId}/status`, { ids: [1], status: 'excluded' });
    expect(excluded.status).toBe(400);
    expect(JSON.parse(excluded.text_).error.details).toHaveProperty('body.reason');
    expect((await ok('cash', 'GET', `/cash/lists/${listId}`)).data.counts).toMatchObject({ candidate: 0, enrolled: 2, excluded: 0 });
  });

  it('receives a distribution, marked paid by the provider’s report', async () => {
    // The distribution was 28 days before today (programme time zone): the PDM is due today.
    distributionDate = addDays(localDay(new Date(), t.config.DEFAULT_TIMEZONE), -28);
    const d = await ok('cash', 'POST', '/cash/distributions', {
      listId, name: 'Ronda 1', date: distributionDate, amount: 300, currency: 'PEN', modality: 'mobile_money', provider: 'Billetera movil', pdm: { sampling: 'all' },
    });
    distributionId = d.data.id;
    expect(d.data.transfers).toMatchObject({ total: 2, pending: 2 });

    const report = `Celular;Estado;Monto;Fecha;Operacion\n987100001;Pagado;300,00;${distributionDate};OP-1\n+51 987 100 003;pagado;300;${distributionDate};OP-2\n999999999;pagado;300;;OP-3\n`;
    const dry = await ok('cash', 'POST', `/cash/distributions/${distributionId}/transfers/import`, { fileName: 'pagos.csv', content: report, dryRun: true });
    expect(dry.data).toMatchObject({ status: 'dry_run', key: 'phone', rows: { total: 3, valid: 2, bad: 1 } });
    expect(dry.data.errors).toEqual([{ row: 4, column: 'Celular', value: '999999999', reason: 'no beneficiary of this distribution has this phone number' }]);
    expect((await ok('cash', 'GET', `/cash/distributions/${distributionId}`)).data.transfers).toMatchObject({ paid: 0, pending: 2 });
    const refused = await ok('cash', 'POST', `/cash/distributions/${distributionId}/transfers/import`, { fileName: 'pagos.csv', content: report, dryRun: false });
    expect(refused.data.status).toBe('failed');
    const done = await ok('cash', 'POST', `/cash/distributions/${distributionId}/transfers/import`, { fileName: 'pagos.csv', content: report, dryRun: false, skipBadRows: true });
    expect(done.data).toMatchObject({ status: 'committed', rows: { updated: 2, skipped: 1 } });
    expect((await ok('cash', 'GET', `/cash/distributions/${distributionId}`)).data.transfers).toMatchObject({ paid: 2, pending: 0, paidAmount: 600 });
  });

  it('gets the PDM 28 days later, not 27', async () => {
    const before = (await phone(ENQUIRER)).length;
    const noon = (day: string) => new Date(`${day}T17:00:00Z`); // midday in Lima
    const early = await runPdmScheduler(services(), { now: noon(addDays(distributionDate, 27)) });
    expect(early).toEqual({ started: [], sent: 0, skipped: 0 });
    expect((await phone(ENQUIRER)).length).toBe(before);

    const due = await runPdmScheduler(services(), { now: noon(addDays(distributionDate, 28)) });
    expect(due).toEqual({ started: [distributionId], sent: 2, skipped: 0 });
    // Run again: nobody gets it twice.
    expect(await runPdmScheduler(services(), { now: noon(addDays(distributionDate, 29)) })).toEqual({ started: [], sent: 0, skipped: 0 });
    const got = await phone(ENQUIRER, before);
    expect(got).toHaveLength(1);
    // Their language is not known yet: the survey asks it first (Spanish and English).
    expect(got[0]).toContain('Elija su idioma / Choose your language');
    const d = (await ok('viewer', 'GET', `/cash/distributions/${distributionId}`)).data;
    expect(d.pdm).toMatchObject({ status: 'running', population: 2, sampleSize: 2 });
  });

  it('answers it over SMS, and an "asked to pay" opens a sensitive complaint only a focal point sees', async () => {
    const before = (await phone(ENQUIRER)).length;
    const answers: [string, string][] = [
      ['1', 'Seguimiento de la ayuda en efectivo. Responder es voluntario'],
      ['1', '¿Recibio la ayuda de 300 PEN?'],
      ['1', '¿Recibio el monto que le dijeron?'],
      ['1', '¿Llego en la fecha que le dijeron?'],
      ['1', '¿Tuvo problemas para cobrar?'],
      ['1 2', 'Si elige 1 (Ninguno), no elija otras opciones.'], // "none" excludes the rest
      ['2 5', '¿Alguien le pidio pagar algo o hacer un favor'],
      ['1', '¿Podemos pasarlo en reserva al equipo de proteccion?'],
      ['1', '¿Se sintio seguro/a'],
      ['1', '¿Le trataron con respeto?'],
      ['1', '¿En que gasto la mayor parte?'],
      ['1 2', 'cubrir sus necesidades basicas'],
      ['2', '¿Cuantas personas viven en su hogar'],
      ['5', 'alimentos mas baratos'],
      ['2', 'pidieron prestada comida'],
      ['1', 'menos veces al dia'],
      ['3', 'porciones mas pequeñas'],
      ['0', 'los adultos comieron menos'],
      ['1', '¿Sabe como presentar un reclamo'],
      ['1', '¿Que tan satisfecho/a esta'],
      ['2', '¿Como prefiere recibir la ayuda?'],
      ['2', '¿Algo mas que quiera decirnos?'],
    ];
    for (const [said, next] of answers) {
      expect(await text(ENQUIRER, said), `route of ${said}`).toBe('survey');
      const replies = await phone(ENQUIRER, before);
      expect(replies.at(-1), `reply to ${said}`).toContain(next);
    }
    expect(await text(ENQUIRER, 'El agente me cobro 20 soles de comision')).toBe('survey');
    const replies = await phone(ENQUIRER, before);
    expect(replies.some((r) => r.includes('¡Gracias! Sus respuestas nos ayudan'))).toBe(true);
    // The acknowledgement of the sensitive case.
    const code = /[A-Z0-9]{6}/.exec(replies.at(-1)!)?.[0];
    expect(code).toBeTruthy();

    const row = await t.db.knex('cash_pdm').where({ distribution_id: distributionId, contact_id: await contactOf(ENQUIRER) }).first();
    expect(row).toMatchObject({ status: 'completed', received: 'yes', amount_told: 'same', on_time: 'yes', asked_to_pay: 'yes', pay_report: 'yes_contact', needs_met: 'most', household_size: 5 });
    expect(readJsonArray(row.problems)).toEqual(['wait', 'agent_fee']);
    expect(readJsonArray(row.spending)).toEqual(['food', 'rent']);
    // rCSI: 2×1 + 1×2 + 3×1 + 0×1 + 1×3 = 10 → 4–18.
    expect(toInt(row.rcsi)).toBe(10);
    expect(row.rcsi_band).toBe('4-18');

    const seen = async (role: Role) => (await ok(role, 'GET', '/complaints?limit=100')).data as any[];
    const focal = (await seen('focal_point')).filter((c) => c.source === 'pdm' && c.category === 'fraud');
    expect(focal).toHaveLength(1);
    expect(focal[0]).toMatchObject({ sensitive: true, code });
    for (const role of ['complaints', 'admin'] as Role[]) {
      expect((await seen(role)).some((c) => c.category === 'fraud')).toBe(false);
      expect((await api(role, 'GET', `/complaints/${code}`)).status).toBe(404);
    }
    // The free comment went to the complaints team as feedback, without the person's number.
    const feedback = (await seen('complaints')).filter((c) => c.source === 'pdm' && c.category === 'suggestion');
    expect(feedback).toHaveLength(1);
    expect(feedback[0].anonymous).toBe(true);
  });

  it('a recipient who did not receive the transfer asks for a complaint and is on the follow-up list', async () => {
    const before = (await phone(NOT_RECEIVED)).length;
    for (const said of ['1', '1', '2', '1']) expect(await text(NOT_RECEIVED, said)).toBe('survey');
    expect((await phone(NOT_RECEIVED, before)).at(-1)).toContain('¿Alguien le pidio pagar');
    for (const said of ['2', '4', '0', '0', '0', '0', '0', '2', '1', 'SALTAR']) expect(await text(NOT_RECEIVED, said), said).toBe('survey');
    const row = await t.db.knex('cash_pdm').where({ distribution_id: distributionId, contact_id: await contactOf(NOT_RECEIVED) }).first();
    expect(row).toMatchObject({ status: 'completed', received: 'no', asked_to_pay: 'no', amount_told: null, rcsi: 0, rcsi_band: '0-3' });
    expect(row.complaint_code).toMatch(/^[A-Z0-9]{6}$/);
    const complaint = await ok('complaints', 'GET', `/complaints/${row.complaint_code}`);
    expect(complaint).toMatchObject({ category: 'programme', source: 'pdm', sensitive: false, wantsAnswer: true });
    expect(complaint.narrative).toContain('did not receive the transfer of 300 PEN');

    const follow = await ok('cash', 'GET', `/cash/distributions/${distributionId}/follow-up`);
    expect(follow.data).toEqual([expect.objectContaining({ phone: NOT_RECEIVED, reason: 'not_received', complaintCode: row.complaint_code })]);
    // The cash team does not see who said they were asked to pay.
    expect(follow.data.some((f: any) => f.reason === 'asked_to_pay')).toBe(false);
    expect((await api('viewer', 'GET', `/cash/distributions/${distributionId}/follow-up`)).status).toBe(403);
  });

  it('appears in the report, which report viewers read as aggregates', async () => {
    const r = (await ok('viewer', 'GET', `/cash/distributions/${distributionId}/report`)).data;
    expect(r.response).toMatchObject({ selected: 2, sent: 2, completed: 2, responseRate: 100 });
    expect(r.indicators.received).toEqual({ n: 1, of: 2, percent: 50 });
    expect(r.indicators.fullAmount).toEqual({ n: 1, of: 1, percent: 100 });
    expect(r.indicators.askedToPay).toEqual({ n: 1, of: 2, percent: 50 });
    expect(r.indicators.problems.find((p: any) => p.key === 'agent_fee')).toEqual({ key: 'agent_fee', count: 1, percent: 100 });
    expect(r.indicators.rcsi).toMatchObject({ n: 2, mean: 5, bands: [{ key: '0-3', count: 1, percent: 50 }, { key: '4-18', count: 1, percent: 50 }, { key: '19+', count: 0, percent: 0 }] });
    // Two respondents: every group is below the minimum cell size, so nothing is shown per group.
    expect(r.disaggregation.gender).toEqual([expect.objectContaining({ group: 'unknown', respondents: 2, suppressed: true, received: null })]);
    expect(JSON.stringify(r)).not.toContain(ENQUIRER.slice(3));

    const csv = await api('viewer', 'GET', `/cash/distributions/${distributionId}/report/export?format=csv&lang=es`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(csv.text_).toContain('received the transfer,1,2,50');
    expect(csv.text_).toContain('El agente cobro comision');
    const xlsx = await fetch(`${t.url}/api/v1/cash/distributions/${distributionId}/report/export?format=xlsx`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(xlsx.headers.get('content-type')).toContain('spreadsheetml');
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load((await xlsx.arrayBuffer()) as never);
    expect(wb.worksheets.map((w) => w.name)).toEqual(['Indicators', 'Breakdowns', 'Disaggregation']);
    const page = await new Client(t.url);
    await page.login('viewer@example.org');
    const html = await page.get(`/cash/distributions/${distributionId}/report`);
    expect(html.status).toBe(200);
    expect(html.text_).toContain('Received the transfer');
    // A chart beside each table (chart.js, served by the surveys domain), with the table's numbers.
    expect(html.text_).toContain('<script src="/static/chart.umd.js"></script>');
    expect(html.text_).toMatch(/<canvas data-chart="\{&quot;title&quot;:&quot;Received the transfer&quot;,&quot;labels&quot;:\[&quot;Yes&quot;,&quot;No&quot;,&quot;Not sure&quot;\],&quot;counts&quot;:\[1,1,0\]\}"/);
    expect(html.text_).not.toContain(ENQUIRER);
    expect((await api('viewer', 'GET', `/cash/lists/${listId}/beneficiaries`)).status).toBe(403);
  });

  it('chooses candidates by their survey answers too (cash_programme consent still required)', async () => {
    const next = (await ok('cash', 'POST', '/cash/lists', { name: 'Billetera movil' })).data.id;
    const spec = { survey: { key: 'pdm-cash', question: 'preferred_modality', choices: ['mobile_money'] } };
    expect((await ok('cash', 'POST', `/cash/lists/${next}/candidates/preview`, spec)).data).toEqual({ count: 1, possibleDuplicates: 1 });
    expect((await ok('cash', 'POST', `/cash/lists/${next}/candidates`, spec)).data).toEqual({ added: 1, duplicates: 1 });
    const [b] = (await ok('cash', 'GET', `/cash/lists/${next}/beneficiaries`)).data;
    expect(b).toMatchObject({ phone: ENQUIRER, source: 'survey', status: 'candidate' });
    // Already enrolled in the first list: a duplicate to resolve before enrolling here.
    expect(b.openDuplicates).toHaveLength(1);
    const bad = await api('cash', 'POST', `/cash/lists/${next}/candidates/preview`, { query: 'colour = "red"' });
    expect(bad.status).toBe(400);
  });

  it('is in the person’s subject-access export, and erasure blanks them but keeps the figures', async () => {
    const id = await contactOf(ENQUIRER);
    const exp = await ok('admin', 'GET', `/contacts/${id}/export`);
    expect(exp.domains.cash.beneficiaries).toEqual([
      expect.objectContaining({ list: 'Tumbes noviembre', phone: ENQUIRER, status: 'enrolled' }),
      expect.objectContaining({ list: 'Billetera movil', phone: ENQUIRER, status: 'candidate' }),
    ]);
    expect(exp.domains.cash.transfers).toEqual([expect.objectContaining({ distribution: 'Ronda 1', amount: 300, status: 'paid' })]);
    expect(exp.domains.cash.pdm).toEqual([expect.objectContaining({ status: 'completed', received: 'yes', rcsi: 10 })]);
    // Whoever reads the export does not learn that they reported being asked to pay (a sensitive case).
    expect(JSON.stringify(exp.domains.cash)).not.toMatch(/asked_to_pay|pay_report/);
    // An enrolled beneficiary is an open case: retention keeps their number (contacts/hooks.ts).
    const { OPEN_CASE_QUERIES } = await import('../../src/contacts/hooks.js');
    const open = OPEN_CASE_QUERIES.find((q) => q.domain === 'cash')!;
    expect((await open.contactIds(t.db.knex)).map((r: { contact_id: unknown }) => toInt(r.contact_id))).toContain(id);

    expect((await api('admin', 'POST', `/contacts/${id}/erase`, { confirm: true })).status).toBe(200);
    const b = await t.db.knex('cash_beneficiaries').where({ list_id: listId }).whereNotNull('erased_at').first();
    expect(b).toMatchObject({ contact_id: null, name: null, phone: null, household_id: null, status: 'enrolled' });
    const r = (await ok('viewer', 'GET', `/cash/distributions/${distributionId}/report`)).data;
    expect(r.response.completed).toBe(2);
    expect(r.indicators.rcsi.mean).toBe(5);
  });
});
