/**
 * The public feedback form (no sign-in, no JavaScript, CSRF double-submit cookie, rate limit per
 * client address) and the console pages: hotline entry, the inbox with filters and pagination, the
 * case page and its forms, CSV export, the referral directory and referrals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasConsent } from '../../src/contacts/consent.js';
import { toBool, toInt } from '../../src/db/values.js';
import { Client, makeUser, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const staff = {} as Record<'complaints' | 'focal_point' | 'viewer', Client>;

beforeAll(async () => {
  t = await startTestApp({ COMPLAINTS_FORM_MAX_PER_HOUR: '3' });
  for (const role of ['complaints', 'focal_point', 'viewer'] as const) {
    await makeUser(t.db, role);
    staff[role] = new Client(t.url);
    expect((await staff[role].login(`${role}@example.org`)).status).toBe(302);
  }
});
afterAll(() => t?.close());

/** A phone browser: cookies, no JavaScript; each gets its own client address. */
let ip = 10;
const phone = () => {
  const c = new Client(t.url);
  const addr = `203.0.113.${++ip}`;
  const request = c.request.bind(c);
  c.request = (method, path, opts = {}) => request(method, path, { ...opts, headers: { 'x-forwarded-for': addr, ...opts.headers } });
  return c;
};

describe('the public feedback form', () => {
  it('is a small page with no script, every input labelled, in Spanish by default and in English on request', async () => {
    const c = phone();
    const page = await c.get('/feedback');
    expect(page.status).toBe(200);
    expect(page.text_.length).toBeLessThan(12_000);
    expect(page.text_).not.toMatch(/<script/i);
    expect(page.text_).toContain('<html lang="es">');
    expect(page.text_).toContain('¿Qué pasó?');
    expect(page.text_).toMatch(/name="_csrf" value="[A-Za-z0-9_-]{32,64}"/);
    for (const m of page.text_.matchAll(/<(?:input|textarea|select)[^>]*>/g)) {
      const tag = m[0];
      if (/type="hidden"/.test(tag)) continue;
      const id = /id="([^"]+)"/.exec(tag)?.[1];
      const wrapped = page.text_.slice(Math.max(0, m.index! - 10), m.index!).includes('<label>');
      expect(wrapped || (id && page.text_.includes(`for="${id}"`)), tag).toBeTruthy();
    }
    const en = await c.get('/feedback?lang=en');
    expect(en.text_).toContain('<html lang="en">');
    expect(en.text_).toContain('What happened?');
  });

  it('files an anonymous complaint and shows its code', async () => {
    const c = phone();
    const page = await c.get('/feedback');
    const res = await c.request('POST', '/feedback', { form: { _csrf: Client.csrfFrom(page.text_), language: 'es', category: 'programme', narrative: 'No llegó el agua al albergue de Tumbes esta semana', identity: 'anonymous', reply: 'none' } });
    expect(res.status).toBe(201);
    const code = /class="secret">([A-Z0-9]{6})</.exec(res.text_)?.[1];
    expect(code).toBeDefined();
    const row = await t.db.knex('complaints').where('code', code!).first();
    expect(row.source).toBe('web');
    expect(row.contact_id).toBeNull();
    expect(row.narrative).toContain('Tumbes');
  });

  it('with a number and the box ticked, keeps the contact and their consent to be answered', async () => {
    const c = phone();
    const page = await c.get('/feedback?lang=en');
    const res = await c.request('POST', '/feedback', { form: { _csrf: Client.csrfFrom(page.text_), language: 'en', category: 'question', narrative: 'When is the next distribution in Comas?', identity: 'contact', phone: '987 600 001', reply: 'whatsapp', consent: 'yes' } });
    expect(res.status).toBe(201);
    expect(res.text_).toContain('STATUS');
    const row = await t.db.knex('complaints').orderBy('id', 'desc').first();
    expect(toBool(row.wants_answer)).toBe(true);
    expect(row.reply_medium).toBe('whatsapp');
    const addr = await t.db.knex('contact_addresses').where('address', '+51987600001').first();
    expect(toInt(row.contact_id)).toBe(toInt(addr.contact_id));
    expect(await hasConsent(t.db.knex, toInt(addr.contact_id), 'complaint_followup')).toBe(true);
    const consent = await t.db.knex('consents').where({ contact_id: addr.contact_id, purpose: 'complaint_followup' }).first();
    expect(consent).toMatchObject({ method: 'web_form', channel: 'web', wording_key: 'web:feedback.consent', wording_language: 'en' });
  });

  it('says what to fix, in the page language, and keeps what was typed', async () => {
    const c = phone();
    const page = await c.get('/feedback');
    const res = await c.request('POST', '/feedback', { form: { _csrf: Client.csrfFrom(page.text_), language: 'es', narrative: 'Hola mundo largo', identity: 'contact', reply: 'sms' } });
    expect(res.status).toBe(400);
    expect(res.text_).toContain('Elija sobre qué es');
    expect(res.text_).toContain('Escriba un número de teléfono');
    expect(res.text_).toContain('Hola mundo largo');
    expect(await t.db.knex('complaints').where('narrative', 'Hola mundo largo').first()).toBeUndefined();
  });

  it('refuses a submission without the CSRF token (or with another browser’s), and saves nothing', async () => {
    const c = phone();
    await c.get('/feedback');
    const before = await t.db.knex('complaints').count({ n: '*' });
    const none = await c.request('POST', '/feedback', { form: { language: 'es', category: 'programme', narrative: 'sin token de formulario', identity: 'anonymous' } });
    expect(none.status).toBe(403);
    expect(none.text_).toContain('venció');
    const other = phone();
    const otherPage = await other.get('/feedback');
    const stolen = await c.request('POST', '/feedback', { form: { _csrf: Client.csrfFrom(otherPage.text_), language: 'es', category: 'programme', narrative: 'con el token de otro', identity: 'anonymous' } });
    expect(stolen.status).toBe(403);
    const after = await t.db.knex('complaints').count({ n: '*' });
    expect(toInt(after[0].n)).toBe(toInt(before[0].n));
  });

  it('limits submissions per client address (COMPLAINTS_FORM_MAX_PER_HOUR=3), not for others', async () => {
    const c = phone();
    const page = await c.get('/feedback');
    const csrf = Client.csrfFrom(page.text_);
    const send = (n: number) => c.request('POST', '/feedback', { form: { _csrf: csrf, language: 'es', category: 'suggestion', narrative: `sugerencia número ${n}`, identity: 'anonymous' } });
    for (let i = 1; i <= 3; i++) expect((await send(i)).status).toBe(201);
    const fourth = await send(4);
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get('retry-after')).toBe('3600');
    expect(await t.db.knex('complaints').where('narrative', 'sugerencia número 4').first()).toBeUndefined();
    const someoneElse = phone();
    const p2 = await someoneElse.get('/feedback');
    expect((await someoneElse.request('POST', '/feedback', { form: { _csrf: Client.csrfFrom(p2.text_), language: 'es', category: 'suggestion', narrative: 'otra persona', identity: 'anonymous' } })).status).toBe(201);
    // Only a hash of the address is kept.
    const hits = await t.db.knex('complaint_form_hits').select('client_hash');
    expect(JSON.stringify(hits)).not.toContain('203.0.113');
  });
});

describe('console', () => {
  let code = '';
  it('a hotline operator enters a complaint with the person’s consent, and lands on the case page', async () => {
    const res = await staff.complaints.submit('/complaints/new', '/complaints', {
      source: 'phone', category: 'assistance', narrative: 'Necesita pañales para su bebé de 3 meses', anonymous: 'no', phone: '987 600 002', medium: 'sms', name: 'Rosa',
      wants_answer: 'yes', reply_medium: 'sms', followup_consent: 'yes', language: 'es', priority: '',
    });
    expect(res.status).toBe(302);
    code = /\/complaints\/([A-Z0-9]{6})$/.exec(res.headers.get('location')!)![1];
    const page = await staff.complaints.get(`/complaints/${code}`);
    expect(page.status).toBe(200);
    expect(page.text_).toContain('pañales');
    expect(page.text_).toContain('Request for assistance');
    const consent = await t.db.knex('consents').where({ purpose: 'complaint_followup', method: 'operator' }).first();
    expect(consent.channel).toBe('phone');
  });

  it('the entry form says what is missing and saves nothing', async () => {
    const res = await staff.complaints.submit('/complaints/new', '/complaints', { source: 'phone', category: 'programme', narrative: 'algo', anonymous: 'no', wants_answer: 'yes' });
    expect(res.status).toBe(400);
    expect(res.text_).toContain('phone');
    expect(res.text_).toContain('followupConsent');
  });

  const codes = (html: string) => [...html.matchAll(/href="\/complaints\/([A-Z0-9]{6})"/g)].map((m) => m[1]);
  it('the inbox lists, filters, searches and pages; the case page moves the case along', async () => {
    for (let i = 0; i < 3; i++) {
      await staff.complaints.submit('/complaints/new', '/complaints', { source: 'in_person', category: 'suggestion', narrative: `idea ${i} sobre horarios`, anonymous: 'yes' });
    }
    const list = await staff.complaints.get('/complaints?category=suggestion');
    expect(list.status).toBe(200);
    expect([...list.text_.matchAll(/href="\/complaints\/[A-Z0-9]{6}"/g)].length).toBeGreaterThanOrEqual(3);
    const firstPage = await staff.complaints.get('/complaints?category=suggestion&limit=2');
    const next = /href="\/complaints\?([^"]*cursor[^"]+)"/.exec(firstPage.text_);
    expect(next).not.toBeNull();
    const second = await staff.complaints.get(`/complaints?${next![1].replace(/&amp;/g, '&').replace(/&#x3D;/g, '=')}`);
    expect(codes(second.text_).length).toBeGreaterThan(0);
    expect(codes(second.text_).some((c) => codes(firstPage.text_).includes(c))).toBe(false);
    const search = await staff.complaints.get('/complaints?q=pa%C3%B1ales');
    expect(codes(search.text_)).toEqual([code]);
    const byCode = await staff.complaints.get(`/complaints?q=${code.toLowerCase()}`);
    expect(codes(byCode.text_)).toEqual([code]);

    const moved = await staff.complaints.submit(`/complaints/${code}`, `/complaints/${code}/status`, { status: 'in_progress', note: 'llamamos a la familia' });
    expect(moved.status).toBe(302);
    const bad = await staff.complaints.submit(`/complaints/${code}`, `/complaints/${code}/status`, { status: 'resolved' });
    expect(bad.status).toBe(400);
    expect(bad.text_).toContain('resolution');
    const done = await staff.complaints.submit(`/complaints/${code}`, `/complaints/${code}/status`, { status: 'resolved', resolution: 'Entregamos pañales el lunes.' });
    expect(done.status).toBe(302);
    const page = await staff.complaints.get(`/complaints/${code}`);
    expect(page.text_).toContain('Entregamos pañales el lunes.');
    expect(page.text_).toContain('llamamos a la familia');
    const row = await t.db.knex('complaints').where('code', code).first('id', 'contact_id', 'status');
    expect(row.status).toBe('resolved');
    const followup = await t.db.knex('outbox').where({ contact_id: row.contact_id, purpose: 'complaint_followup' }).first();
    expect(JSON.stringify(followup.content)).toContain('Entregamos pañales');
  });

  it('exports CSV with the filters applied', async () => {
    const csv = await staff.complaints.get('/complaints/export.csv?category=suggestion');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const lines = csv.text_.replace(/^\uFEFF/, '').trim().split('\n');
    expect(lines[0]).toMatch(/^code,received_at,source,category/);
    expect(lines.slice(1).every((l) => l.includes(',suggestion,'))).toBe(true);
    expect(lines.length).toBeGreaterThanOrEqual(4);
  });

  it('a viewer cannot open complaints on the console', async () => {
    expect((await staff.viewer.get('/complaints')).status).toBe(403);
    expect((await staff.viewer.get('/complaints/new')).status).toBe(403);
  });

  it('the referral directory: add a service, refer with consent only, record the outcome', async () => {
    const add = await staff.complaints.submit('/referral-services', '/referral-services', { organisation: 'DEMUNA Comas', name: 'Protección de la niñez', eligibility: 'Familias con niños', languages: 'es, qu', hours: 'L-V 8:00-16:00', contact: 'Av. Túpac Amaru 123', area: 'Comas', kinds: 'child_protection' });
    expect(add.status).toBe(302);
    const dir = await staff.complaints.get('/referral-services?q=comas');
    expect(dir.text_).toContain('DEMUNA Comas');
    const service = await t.db.knex('referral_services').where('organisation', 'DEMUNA Comas').first('id');
    const made = await staff.complaints.submit('/complaints/new', '/complaints', { source: 'phone', category: 'assistance', narrative: 'niña sin colegio', anonymous: 'yes' });
    const c2 = /\/complaints\/([A-Z0-9]{6})$/.exec(made.headers.get('location')!)![1];
    const noConsent = await staff.complaints.submit(`/complaints/${c2}`, `/complaints/${c2}/referrals`, { service_id: String(service.id), consent_method: 'operator' });
    expect(noConsent.status).toBe(400);
    expect(await t.db.knex('referrals').count({ n: '*' }).then((r) => toInt(r[0].n))).toBe(0);
    const ok = await staff.complaints.submit(`/complaints/${c2}`, `/complaints/${c2}/referrals`, { service_id: String(service.id), consent_method: 'operator', consent: 'yes', due_days: '7' });
    expect(ok.status).toBe(302);
    const ref = await t.db.knex('referrals').first();
    expect(toBool(ref.consent)).toBe(true);
    expect((await t.db.knex('complaints').where('code', c2).first('status')).status).toBe('referred');
    const outcome = await staff.complaints.submit('/referrals', `/referrals/${ref.id}`, { outcome: 'accepted', back: '/referrals' });
    expect(outcome.status).toBe(302);
    expect((await t.db.knex('referrals').where('id', ref.id).first('outcome')).outcome).toBe('accepted');
  });
});
