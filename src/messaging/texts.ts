/**
 * System messages (acknowledgements, consent prompts, confirmations) are Handlebars files in
 * templates/messages/<language>/<key>.hbs. A wording's version is the hash of its text, so the
 * consent ledger records exactly which wording a person saw, and a change of wording is a new
 * version without anyone having to remember to bump a number.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { TEMPLATES } from '../paths.js';

export interface Wording {
  key: string;
  language: string;
  version: string;
  text: string;
}

const hb = Handlebars.create();
const cache = new Map<string, { version: string; render: Handlebars.TemplateDelegate; source: string } | null>();

function load(language: string, key: string) {
  const id = `${language}/${key}`;
  if (!cache.has(id)) {
    const file = join(TEMPLATES, 'messages', language, `${key}.hbs`);
    if (!existsSync(file)) cache.set(id, null);
    else {
      const source = readFileSync(file, 'utf8').replace(/\s+$/, '');
      cache.set(id, { source, version: createHash('sha256').update(source).digest('hex').slice(0, 12), render: hb.compile(source, { noEscape: true }) });
    }
  }
  return cache.get(id) ?? null;
}

/** Languages that have system messages. */
export function messageLanguages(): string[] {
  const dir = join(TEMPLATES, 'messages');
  return existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort() : [];
}

/**
 * Renders a system message in the first of `languages` that has it (then English).
 * Throws if no language has the key: a missing wording is a bug, not something to send blank.
 */
export function wording(key: string, languages: (string | null | undefined)[], vars: Record<string, unknown> = {}): Wording {
  const tried = [...languages.filter((l): l is string => Boolean(l)), 'en'];
  for (const lang of tried) {
    const base = lang.split('-')[0];
    for (const l of lang === base ? [lang] : [lang, base]) {
      const t = load(l, key);
      if (t) return { key, language: l, version: t.version, text: t.render(vars) };
    }
  }
  throw new Error(`No system message "${key}" in ${tried.join(', ')}`);
}
