/**
 * The staff console in a real browser (Debian's Chromium through playwright-core) against a real
 * server (src/main.ts on a temporary SQLite file, its dispatcher and jobs running):
 *   - sign in as the first admin with the password the server printed;
 *   - create a list, join it from the phone simulator (WhatsApp, tapping the consent button), and see
 *     the subscription counted on the lists page and on the dashboard;
 *   - write a key message, have a second staff member approve it, compose a broadcast to the list,
 *     preview it and send it, and see it arrive on the simulated phone;
 *   - answer a survey in the simulator and see the answer in the results table and chart;
 *   - file a complaint on the public form, and triage it;
 *   - check that a viewer cannot open a sensitive case that a focal point can.
 * A screenshot of every page visited is written under test/artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { launchBrowser, shot, startServer, type Browser, type RunningServer } from './harness.js';

let server: RunningServer;
let browser: Browser;
let page: Page;
const problems: string[] = [];
const TEST_NUMBER = '+51 999 000 001';

async function signIn(email: string, password: string): Promise<void> {
  await page.goto(`${server.url}/login`);
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(password);
  await page.locator('main form button[type=submit]').click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
}

async function signOut(): Promise<void> {
  await page.locator('form[action="/logout"] button').click();
  await page.waitForURL(/\/login/);
}

/** Types a message on the simulated phone and waits for the page to come back. */
async function phoneSays(text: string): Promise<void> {
  await page.locator('#sim-text').fill(text);
  await page.locator('#compose button[type=submit]').click();
  await page.waitForLoadState('load');
}

/** Waits until the simulated phone shows a message from the programme matching `text`. */
async function phoneShows(text: RegExp | string, timeout = 20_000): Promise<void> {
  await page.locator('.thread .msg.from-programme .body', { hasText: text }).last().waitFor({ timeout });
}

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser(problems);
  page = browser.page;
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('the staff console in a browser', () => {
  it('signs in as the first admin and lands on the dashboard', async () => {
    await page.goto(`${server.url}/`);
    await expect.poll(() => page.url()).toContain('/login');
    await shot(page, '01-login');
    await signIn(server.admin.email, server.admin.password);
    await expect.poll(() => page.locator('h1').innerText()).toBe('Dashboard');
    expect(await page.locator('nav.side a').allInnerTexts()).toEqual(expect.arrayContaining(['Dashboard', 'Weekly report', 'Phone simulator', 'Lists', 'Broadcasts', 'Surveys', 'Complaints']));
    await shot(page, '02-dashboard-empty');
  });

  it('creates a list and joins it from the phone simulator; the subscription is counted', async () => {
    await page.getByRole('link', { name: 'Lists', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill('noticias');
    await page.getByLabel('Name', { exact: true }).fill('Noticias de salud');
    await page.locator('#kw-es').fill('SALUD');
    await page.locator('#kw-en').fill('HEALTH');
    await shot(page, '03-list-new');
    await page.locator('main form button[type=submit]').last().click();
    await expect.poll(() => page.url()).toMatch(/\/lists\/\d+$/);
    await shot(page, '04-list-created');

    await page.getByRole('link', { name: 'Phone simulator' }).click();
    await page.getByLabel('Test number').fill(TEST_NUMBER);
    await page.getByLabel('Phone', { exact: true }).selectOption('whatsapp');
    await page.getByRole('button', { name: 'Open' }).click();
    await phoneSays('SALUD');
    await phoneShows(/Noticias de salud/);
    await shot(page, '05-simulator-consent-question');
    // The consent question has buttons: tapping one sends its payload.
    const yes = page.locator('.thread .msg.from-programme').last().locator('button.tap').first();
    const label = (await yes.innerText()).trim();
    expect(label).toMatch(/^(Sí|Yes)$/);
    await yes.click();
    await page.waitForLoadState('load');
    await expect.poll(async () => page.locator('.thread .msg.from-person .body').allInnerTexts()).toContain(label);
    await phoneShows(/Noticias de salud/); // the welcome
    await shot(page, '06-simulator-joined');

    await page.getByRole('link', { name: 'Lists', exact: true }).click();
    const row = page.locator('tr', { has: page.locator('code', { hasText: /^noticias$/ }) });
    await expect.poll(() => row.locator('td').last().innerText()).toBe('1');
    await shot(page, '07-lists-counted');

    await page.getByRole('link', { name: 'Dashboard' }).click();
    // Test contacts are left out unless asked for.
    await expect.poll(() => page.locator('[data-kpi="new-subscriptions"]').innerText()).toBe('0');
    await page.getByLabel(/Include test contacts/).check();
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.locator('[data-kpi="new-subscriptions"]').innerText()).toBe('1');
    await expect.poll(() => page.locator('td[data-list="noticias"][data-col="active"]').innerText()).toBe('1');
    await expect.poll(() => page.locator('canvas[data-drawn]').count()).toBeGreaterThan(0);
    await shot(page, '08-dashboard-with-test-contacts');
  });

  it('writes a key message, has it approved by a second person, previews a broadcast to the list and sends it', async () => {
    // A second staff member, to review: nobody approves their own message.
    await page.getByRole('link', { name: 'Staff users' }).click();
    await page.locator('#new-email').fill('editor@example.org');
    await page.locator('#new-name').fill('Edith Editor');
    await page.locator('#new-role').selectOption('editor');
    await page.locator('#new-password').fill('correct horse battery staple');
    await page.locator('form[action="/staff/users"] button[type=submit]').click();
    await page.waitForLoadState('load');
    await expect.poll(() => page.locator('main').innerText()).toContain('editor@example.org');

    await page.getByRole('link', { name: 'Key messages' }).click();
    await page.goto(`${server.url}/messages/new`);
    await page.locator('#msg-key').fill('vacunacion');
    await page.locator('#msg-title').fill('Vacunación gratuita');
    await page.locator('#msg-topic-in').fill('health');
    await page.locator('#text-es').fill('Vacunación gratuita este sábado en el centro de salud. Nunca pedimos dinero.');
    await shot(page, '09-key-message-new');
    await page.locator('form[action="/messages"] button[type=submit]').click();
    await expect.poll(() => page.url()).toMatch(/\/messages\/\d+$/);
    const messageUrl = page.url();
    await page.locator('form[action$="/submit"] button').click();
    await page.waitForLoadState('load');
    await shot(page, '10-key-message-submitted');

    await signOut();
    await signIn('editor@example.org', 'correct horse battery staple');
    await page.goto(messageUrl);
    await page.locator('form[action$="/approve"] button').click();
    await page.waitForLoadState('load');
    await shot(page, '11-key-message-approved');
    await signOut();
    await signIn(server.admin.email, server.admin.password);

    await page.getByRole('link', { name: 'Broadcasts' }).click();
    await page.goto(`${server.url}/broadcasts/new`);
    await page.locator('#bc-name').fill('Vacunas sábado');
    const messageValue = await page.locator('#bc-message option', { hasText: 'Vacunación gratuita' }).getAttribute('value');
    await page.locator('#bc-message').selectOption(messageValue!);
    await page.locator('label', { hasText: 'Noticias de salud' }).locator('input[type=checkbox]').check();
    await page.locator('input[name="quiet_off"]').check();
    await shot(page, '12-broadcast-compose');
    await page.locator('form[action="/broadcasts"] button[type=submit]').click();
    await expect.poll(() => page.url()).toMatch(/\/broadcasts\/\d+\/preview$/);
    await expect.poll(() => page.locator('main').innerText()).toContain('Vacunación gratuita este sábado');
    await shot(page, '13-broadcast-preview');
    const send = page.locator('form[action$="/send"]').first().locator('button');
    expect(await send.innerText()).toMatch(/\b1\b/); // one recipient: the test contact on the list
    await send.click();
    await expect.poll(() => page.url()).toMatch(/\/broadcasts\/\d+$/);
    await shot(page, '14-broadcast-sent');

    await page.goto(`${server.url}/simulator?number=${encodeURIComponent(TEST_NUMBER)}&medium=whatsapp`);
    await phoneShows('Vacunación gratuita este sábado');
    await shot(page, '15-simulator-broadcast-received');
  });

  it('answers a survey in the simulator, and the answer shows in the results table and chart', async () => {
    await page.goto(`${server.url}/surveys/needs-assessment/runs/new`);
    await page.locator('#run-name').fill('Necesidades de información');
    const listValue = await page.locator('#run-lists option', { hasText: 'Noticias de salud' }).getAttribute('value');
    await page.locator('#run-lists').selectOption(listValue!);
    await page.locator('#run-keyword').fill('ENCUESTA');
    await page.locator('#run-ask-language').selectOption('false');
    await shot(page, '16-survey-run-new');
    await page.locator('button[name=action][value=start]').click();
    await expect.poll(() => page.url()).toMatch(/\/survey-runs\/\d+$/);
    await shot(page, '17-survey-run-started');

    await page.goto(`${server.url}/simulator?number=${encodeURIComponent(TEST_NUMBER)}&medium=whatsapp`);
    const before = await page.locator('.thread .msg.from-programme').count();
    await phoneSays('ENCUESTA');
    await expect.poll(() => page.locator('.thread .msg.from-programme').count(), { timeout: 20_000 }).toBeGreaterThan(before);
    await shot(page, '18-survey-first-question');
    // Tap the first option of each question until the phone-access question has been answered.
    for (let i = 0; i < 4; i++) {
      const last = page.locator('.thread .msg.from-programme').last();
      const text = await last.locator('.body').innerText();
      const taps = last.locator('button.tap');
      if ((await taps.count()) === 0) break;
      const count = await page.locator('.thread .msg.from-programme').count();
      await taps.first().click();
      await page.waitForLoadState('load');
      await expect.poll(() => page.locator('.thread .msg.from-programme').count(), { timeout: 20_000 }).toBeGreaterThan(count);
      if (/celular|phone/i.test(text)) break;
    }
    await shot(page, '19-survey-answered');

    await page.goto(`${server.url}/surveys/needs-assessment/results`);
    const section = page.locator('section.result', { has: page.locator('code', { hasText: /^phone_access$/ }) });
    await expect.poll(() => section.locator('tbody tr').first().locator('td').nth(1).innerText()).toBe('1');
    const drawn = await section.locator('canvas').evaluate((c) => {
      const chart = (globalThis as unknown as { Chart?: { getChart(c: unknown): { data: { datasets: { data: number[] }[] } } | undefined } }).Chart?.getChart(c);
      return chart ? chart.data.datasets[0].data : null;
    });
    expect(drawn).not.toBeNull();
    expect(drawn![0]).toBe(1);
    await shot(page, '20-survey-results');
  });

  let caseCode = '';
  let sensitiveCode = '';

  it('files a complaint on the public form and triages it', async () => {
    await page.goto(`${server.url}/feedback?lang=en`);
    await shot(page, '21-feedback-form');
    await page.locator('input[name=category][value=programme]').check();
    await page.locator('#fb-narrative').fill('The distribution point was closed when we arrived on Tuesday.');
    await page.locator('input[name=identity][value=anonymous]').check();
    await page.locator('form[action="/feedback"] button[type=submit]').click();
    await page.waitForLoadState('load');
    caseCode = (await page.locator('strong.secret').innerText()).trim();
    expect(caseCode).toMatch(/^[A-Z0-9]{6}$/);
    await shot(page, '22-feedback-filed');

    await page.goto(`${server.url}/complaints`);
    await page.getByRole('link', { name: caseCode }).click();
    await expect.poll(() => page.locator('blockquote.narrative').innerText()).toContain('distribution point was closed');
    await shot(page, '23-complaint-new');
    await page.locator('#s-status').selectOption('acknowledged');
    await page.locator('#s-note').fill('Called the site team.');
    await page.locator('form[action$="/status"] button[type=submit]').click();
    await page.waitForLoadState('load');
    await page.locator('#s-priority').selectOption('high');
    await page.locator('form[action$="/priority"] button[type=submit]').click();
    await page.waitForLoadState('load');
    const facts = await page.locator('main dl').innerText();
    expect(facts).toMatch(/Acknowledged/i);
    expect(facts).toMatch(/High/i);
    await shot(page, '24-complaint-triaged');
  });

  it('keeps a sensitive case from a viewer (and from an admin); a focal point opens it', async () => {
    await page.goto(`${server.url}/feedback?lang=en`);
    await page.locator('input[name=category][value=sea]').check();
    await page.locator('#fb-narrative').fill('A volunteer asked for something in exchange for the voucher.');
    await page.locator('input[name=identity][value=anonymous]').check();
    await page.locator('form[action="/feedback"] button[type=submit]').click();
    await page.waitForLoadState('load');
    sensitiveCode = (await page.locator('strong.secret').innerText()).trim();
    expect(sensitiveCode).toMatch(/^[A-Z0-9]{6}$/);

    // Not even an admin sees it: to everyone without complaints.sensitive it does not exist.
    const asAdmin = await page.goto(`${server.url}/complaints/${sensitiveCode}`);
    expect(asAdmin!.status()).toBe(404);
    expect(await page.locator('main').innerText()).not.toContain('volunteer');
    await page.goto(`${server.url}/complaints`);
    expect(await page.locator('main').innerText()).not.toContain(sensitiveCode);

    for (const [email, role] of [['viewer@example.org', 'viewer'], ['focal@example.org', 'focal_point']]) {
      await page.goto(`${server.url}/staff/users`);
      await page.locator('#new-email').fill(email);
      await page.locator('#new-name').fill(role);
      await page.locator('#new-role').selectOption(role);
      await page.locator('#new-password').fill('correct horse battery staple');
      await page.locator('form[action="/staff/users"] button[type=submit]').click();
      await page.waitForLoadState('load');
    }

    await signOut();
    await signIn('viewer@example.org', 'correct horse battery staple');
    expect(await page.locator('nav.side').innerText()).not.toMatch(/Complaints\b/);
    const asViewer = await page.goto(`${server.url}/complaints/${sensitiveCode}`);
    expect(asViewer!.status()).toBe(403);
    expect(await page.locator('main').innerText()).not.toContain('volunteer');
    await shot(page, '25-viewer-refused');
    // The viewer's dashboard counts it only as an anonymous total.
    await page.goto(`${server.url}/dashboard`);
    await expect.poll(() => page.locator('[data-kpi="sensitive-total"]').innerText()).toMatch(/\b1\b/);
    expect(await page.locator('td[data-category="sea"]').count()).toBe(0);
    await shot(page, '26-viewer-dashboard');

    await signOut();
    await signIn('focal@example.org', 'correct horse battery staple');
    const asFocal = await page.goto(`${server.url}/complaints/${sensitiveCode}`);
    expect(asFocal!.status()).toBe(200);
    await expect.poll(() => page.locator('blockquote.narrative').innerText()).toContain('volunteer asked for something');
    await shot(page, '27-focal-point-sensitive-case');
  });

  it('shows the weekly report, and switches the console to Spanish', async () => {
    await page.goto(`${server.url}/reports/weekly?week=${new Date().toISOString().slice(0, 10)}`);
    await expect.poll(() => page.locator('h1').innerText()).toMatch(/Weekly situation report/);
    await shot(page, '28-weekly-report');
    await page.locator('form[action="/locale"] button').click();
    await page.waitForLoadState('load');
    await expect.poll(() => page.locator('h1').innerText()).toMatch(/Informe semanal/);
    expect(await page.locator('html').getAttribute('lang')).toBe('es');
    await shot(page, '29-weekly-report-es');
  });

  /** Form controls a person cannot know the purpose of: no label, no aria-label(ledby). */
  const UNLABELLED = `[...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !['hidden', 'submit', 'button', 'reset'].includes(el.type))
    .filter((el) => !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.closest('label') || (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))))
    .map((el) => el.outerHTML.slice(0, 140))`;

  it('every page of the menu opens for an admin, with one heading, labelled form controls and a skip link', async () => {
    await signOut();
    await signIn(server.admin.email, server.admin.password);
    const links = await page.locator('nav.side a').evaluateAll((as) => as.map((a) => (a as unknown as { getAttribute(n: string): string }).getAttribute('href')));
    expect(links.length).toBeGreaterThan(15);
    const issues: string[] = [];
    for (const href of links) {
      const res = await page.goto(`${server.url}${href}`);
      if (res!.status() !== 200) issues.push(`${href}: status ${res!.status()}`);
      const h1 = await page.locator('main h1').count();
      if (h1 !== 1) issues.push(`${href}: ${h1} h1`);
      for (const c of (await page.evaluate(UNLABELLED)) as string[]) issues.push(`${href}: unlabelled ${c}`);
      await shot(page, `30-page${href.replaceAll('/', '-')}`);
    }
    // Keyboard: the first Tab reaches the skip link, which leads to the page's content.
    await page.goto(`${server.url}/dashboard`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.className')).toBe('skip');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement.id')).toBe('main');
    expect(issues).toEqual([]);
  });

  it("shows a viewer nothing personal on any page the viewer's menu offers", async () => {
    await signOut();
    await signIn('viewer@example.org', 'correct horse battery staple');
    const links = await page.locator('nav.side a').evaluateAll((as) => as.map((a) => (a as unknown as { getAttribute(n: string): string }).getAttribute('href')));
    const pages = [...links];
    // And the pages those link to: a list, a broadcast, the weekly report's downloads.
    await page.goto(`${server.url}/lists`);
    pages.push(...(await page.locator('main a[href^="/lists/"]').evaluateAll((as) => as.map((a) => (a as unknown as { getAttribute(n: string): string }).getAttribute('href')))));
    await page.goto(`${server.url}/broadcasts`);
    pages.push(...(await page.locator('main a[href^="/broadcasts/"]').evaluateAll((as) => as.map((a) => (a as unknown as { getAttribute(n: string): string }).getAttribute('href')))));
    const leaks: string[] = [];
    for (const href of new Set(pages)) {
      const res = await page.goto(`${server.url}${href}`);
      const text = await page.locator('body').innerText();
      for (const secret of ['999000001', '999 000 001', 'volunteer asked', 'distribution point was closed', 'Edith Editor']) {
        if (text.includes(secret)) leaks.push(`${href} (${res!.status()}): ${secret}`);
      }
    }
    expect(pages.length).toBeGreaterThan(3);
    expect(leaks).toEqual([]);
  });

  it('raised no script error and no failed request in any page', () => {
    // The 404 and 403 of the sensitive case above were asked for.
    expect(problems.filter((p) => !p.includes(`/complaints/${sensitiveCode})`))).toEqual([]);
  });
});
