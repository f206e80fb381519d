/**
 * Server-rendered console pages: Handlebars templates under templates/console/ (layouts, partials,
 * pages) and the English and Spanish strings under templates/console/locales/. Templates are
 * compiled once and kept.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import Handlebars from 'handlebars';
import { TEMPLATES } from '../paths.js';

export const LOCALES = ['en', 'es'] as const;
export type Locale = (typeof LOCALES)[number];

type Strings = Record<string, string>;

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

export class Renderer {
  private readonly hb = Handlebars.create();
  private readonly pages = new Map<string, Handlebars.TemplateDelegate>();
  private readonly layouts = new Map<string, Handlebars.TemplateDelegate>();
  readonly strings: Record<Locale, Strings>;

  constructor(root = join(TEMPLATES, 'console')) {
    this.strings = {
      en: JSON.parse(readFileSync(join(root, 'locales', 'en.json'), 'utf8')) as Strings,
      es: JSON.parse(readFileSync(join(root, 'locales', 'es.json'), 'utf8')) as Strings,
    };
    const strings = this.strings;
    // {{t "key"}} or {{t "key" name=value}}: the string for the page's locale, with {name} filled in.
    this.hb.registerHelper('t', function (this: unknown, key: string, options: Handlebars.HelperOptions) {
      const locale = ((options.data.root as { locale?: Locale }).locale ?? 'en') as Locale;
      let s = strings[locale][key] ?? strings.en[key] ?? key;
      for (const [k, v] of Object.entries(options.hash ?? {})) s = s.replaceAll(`{${k}}`, String(v));
      return s;
    });
    this.hb.registerHelper('concat', (...args: unknown[]) => args.slice(0, -1).join(''));
    this.hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
    this.hb.registerHelper('includes', (list: unknown, v: unknown) => Array.isArray(list) && list.includes(v));
    this.hb.registerHelper('date', (d: unknown) => (d ? new Date(d as string).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : ''));
    this.hb.registerHelper('json', (v: unknown) => JSON.stringify(v));
    for (const file of walk(join(root, 'partials'))) {
      this.hb.registerPartial(relative(join(root, 'partials'), file).replace(/\.hbs$/, ''), readFileSync(file, 'utf8'));
    }
    for (const file of walk(join(root, 'layouts'))) {
      this.layouts.set(relative(join(root, 'layouts'), file).replace(/\.hbs$/, ''), this.hb.compile(readFileSync(file, 'utf8')));
    }
    for (const file of walk(join(root, 'pages'))) {
      this.pages.set(relative(join(root, 'pages'), file).replace(/\.hbs$/, ''), this.hb.compile(readFileSync(file, 'utf8')));
    }
  }

  t(locale: Locale, key: string): string {
    return this.strings[locale][key] ?? this.strings.en[key] ?? key;
  }

  render(page: string, data: Record<string, unknown>, layout = 'main'): string {
    const tpl = this.pages.get(page);
    if (!tpl) throw new Error(`No console page template ${page}`);
    const body = tpl(data);
    const wrap = this.layouts.get(layout);
    return wrap ? wrap({ ...data, body }) : body;
  }
}
