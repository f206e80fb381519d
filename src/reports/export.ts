/**
 * The weekly report as a table (CSV, or XLSX with one sheet per section): section, item, this week,
 * last week, change — labelled in the reader's language.
 */
import { stringify } from 'csv-stringify/sync';
import ExcelJS from 'exceljs';
import type { WeeklyReport } from './weekly.js';

export type Translate = (key: string) => string;
type Row = [string, string, number | string | null, number | string | null, number | string | null];

export function reportRows(r: WeeklyReport, t: Translate): { section: string; rows: Row[] }[] {
  const sections: { section: string; rows: Row[] }[] = [];
  sections.push({
    section: t('weekly.summary'),
    rows: r.indicators.map((i) => [t('weekly.summary'), t(`weekly.indicator.${i.key}`), i.value, i.previous, i.change]),
  });
  sections.push({
    section: t('weekly.byChannel'),
    rows: r.messages.byChannel.flatMap((c): Row[] => [
      [t('weekly.byChannel'), `${t(`channel.${c.channel}`)} · ${t('weekly.received')}`, c.received, null, null],
      [t('weekly.byChannel'), `${t(`channel.${c.channel}`)} · ${t('weekly.sent')}`, c.sent, null, null],
      [t('weekly.byChannel'), `${t(`channel.${c.channel}`)} · ${t('dashboard.deliveredRate')} %`, c.deliveredPct, null, null],
      [t('weekly.byChannel'), `${t(`channel.${c.channel}`)} · ${t('dashboard.readRate')} %`, c.readPct, null, null],
    ]),
  });
  for (const b of r.breakdowns) {
    const section = `${t('weekly.peopleBy')} ${t(`weekly.breakdown.${b.name}`)}`;
    sections.push({
      section,
      rows: [...b.values.map((v): Row => [section, v.value, v.count, null, null]), [section, t('weekly.notRecorded'), b.notRecorded, null, null]],
    });
  }
  sections.push({
    section: t('weekly.topics'),
    rows: r.topics.flatMap((x): Row[] => [
      [t('weekly.topics'), `${x.topic} · ${t('dashboard.faqHits')}`, x.faq, x.previousFaq, x.faq - x.previousFaq],
      [t('weekly.topics'), `${x.topic} · ${t('dashboard.broadcastMessages')}`, x.broadcast, x.previousBroadcast, x.broadcast - x.previousBroadcast],
    ]),
  });
  sections.push({
    section: t('weekly.feedback'),
    rows: [
      ...r.feedback.byCategory.map((c): Row => [t('weekly.feedback'), t(`complaints.category.${c.category}`), c.count, c.previous, c.count - c.previous]),
      [t('weekly.feedback'), t('dashboard.sensitiveTotal'), r.feedback.sensitive, null, null],
      ...r.feedback.rumourMessages.map((m): Row => [t('weekly.feedback'), `${t('weekly.rumourAnswered')}: ${m.title}`, m.faq + m.broadcast, null, null]),
    ],
  });
  sections.push({
    section: t('weekly.subscriptions'),
    rows: r.subscriptions.byList.flatMap((l): Row[] => [
      [t('weekly.subscriptions'), `${l.name} · ${t('dashboard.joined')}`, l.joined, null, null],
      [t('weekly.subscriptions'), `${l.name} · ${t('dashboard.ended')}`, l.ended, null, null],
      [t('weekly.subscriptions'), `${l.name} · ${t('dashboard.active')}`, l.active, null, null],
    ]),
  });
  sections.push({
    section: t('weekly.surveys'),
    rows: r.surveys.flatMap((s): Row[] => [
      [t('weekly.surveys'), `${s.title} · ${t('dashboard.started')}`, s.started, null, null],
      [t('weekly.surveys'), `${s.title} · ${t('dashboard.completed')}`, s.completed, null, null],
    ]),
  });
  return sections;
}

function header(t: Translate): string[] {
  return [t('weekly.section'), t('weekly.item'), t('weekly.thisWeek'), t('weekly.lastWeek'), t('weekly.change')];
}

export function weeklyCsv(r: WeeklyReport, t: Translate): string {
  const rows = reportRows(r, t).flatMap((s) => s.rows);
  // A byte-order mark, so that Excel opens the UTF-8 file with its accents intact.
  return '\uFEFF' + stringify([[`${t('weekly.title')} ${r.week.label}`, `${r.week.from} – ${r.week.to}`, '', '', ''], header(t), ...rows]);
}

export async function weeklyXlsx(r: WeeklyReport, t: Translate): Promise<Buffer> {
  const wb = new ExcelJS.Workbook();
  wb.creator = 'Ayni';
  wb.created = new Date(r.generatedAt);
  for (const s of reportRows(r, t)) {
    // Sheet names: at most 31 characters, none of : \ / ? * [ ]
    const name = s.section.replace(/[:\\/?*[\]]/g, ' ').slice(0, 31);
    const ws = wb.addWorksheet(name);
    ws.addRow([`${t('weekly.title')} ${r.week.label}`, `${r.week.from} – ${r.week.to}`]).font = { bold: true };
    const h = ws.addRow(header(t).slice(1));
    h.font = { bold: true };
    for (const row of s.rows) ws.addRow(row.slice(1));
    ws.getColumn(1).width = 48;
    for (const c of [2, 3, 4]) ws.getColumn(c).width = 14;
  }
  return Buffer.from(await wb.xlsx.writeBuffer());
}
