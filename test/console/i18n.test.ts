/**
 * The console speaks English and Spanish completely: both locale files have the same keys, no
 * string is empty, every {placeholder} of a string is in its translation, and every key a template or
 * a console route names (statically, or as a known prefix and value) exists.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEMPLATES, ROOT } from '../../src/paths.js';
import { NAV, NAV_GROUPS } from '../../src/console/page.js';
import { ROLES } from '../../src/staff/roles.js';
import { CATEGORIES } from '../../src/complaints/model.js';
import { SLA_STATES } from '../../src/complaints/stats.js';
import { BREAKDOWNS, INDICATORS } from '../../src/reports/weekly.js';

const en = JSON.parse(readFileSync(join(TEMPLATES, 'console', 'locales', 'en.json'), 'utf8')) as Record<string, string>;
const es = JSON.parse(readFileSync(join(TEMPLATES, 'console', 'locales', 'es.json'), 'utf8')) as Record<string, string>;

function walk(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name), ext) : e.name.endsWith(ext) ? [join(dir, e.name)] : []));
}

const placeholders = (s: string) => [...s.matchAll(/\{([a-zA-Z]\w*)\}/g)].map((m) => m[1]).sort();

describe('console translations', () => {
  it('English and Spanish have the same keys', () => {
    expect(Object.keys(es).filter((k) => !(k in en))).toEqual([]);
    expect(Object.keys(en).filter((k) => !(k in es))).toEqual([]);
  });

  it('no string is empty, and each translation keeps its placeholders', () => {
    const empty = Object.entries({ ...en }).filter(([, v]) => !v.trim()).map(([k]) => `en:${k}`).concat(Object.entries(es).filter(([, v]) => !v.trim()).map(([k]) => `es:${k}`));
    expect(empty).toEqual([]);
    const mismatched = Object.keys(en).filter((k) => k in es && placeholders(en[k]).join() !== placeholders(es[k]).join());
    expect(mismatched).toEqual([]);
  });

  it('every key a template names exists', () => {
    const missing: string[] = [];
    for (const file of walk(join(TEMPLATES, 'console'), '.hbs')) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/[({]t\s+"([^"]+)"/g)) if (!(m[1] in en)) missing.push(`${file.slice(TEMPLATES.length + 1)}: ${m[1]}`);
    }
    expect(missing).toEqual([]);
  });

  it('every key the console routes use for titles, flashes and errors exists', () => {
    const missing: string[] = [];
    for (const file of walk(join(ROOT, 'src'), '.ts')) {
      const text = readFileSync(file, 'utf8');
      const patterns = [/flash\(\s*ctx,\s*'([^']+)'/g, /\b(?:title|heading): '([a-z][A-Za-z]*\.[A-Za-z0-9_.]+)'/g, /\berror: '([a-z][A-Za-z]*\.[A-Za-z0-9_.]+)'/g];
      for (const re of patterns) for (const m of text.matchAll(re)) if (!(m[1] in en)) missing.push(`${file.slice(ROOT.length + 1)}: ${m[1]}`);
    }
    expect(missing).toEqual([]);
  });

  it('every menu entry and every key built from a known set of values exists', () => {
    const keys = [
      ...NAV.map((n) => n.label),
      ...NAV_GROUPS.map((g) => g.label),
      'navGroup.more',
      ...ROLES.map((r) => `role.${r}`),
      ...CATEGORIES.map((c) => `complaints.category.${c}`),
      ...SLA_STATES.map((s) => `complaints.sla.${s}`),
      ...INDICATORS.map((i) => `weekly.indicator.${i}`),
      ...BREAKDOWNS.map((b) => `weekly.breakdown.${b.name}`),
      ...['whatsapp', 'twilio', 'africastalking', 'simulator', 'sms', 'none'].map((c) => `channel.${c}`),
      ...['reply', 'updates', 'surveys', 'cash_programme', 'complaint_followup'].map((p) => `dashboard.purpose.${p}`),
      ...['stop', 'leave', 'staff', 'erased', 'unknown'].map((r) => `dashboard.reason.${r}`),
      ...['queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'skipped', 'cancelled'].map((s) => `simulator.status.${s}`),
    ];
    expect(keys.filter((k) => !(k in en))).toEqual([]);
  });
});
