/** Rendering a console page for the current staff user: locale, navigation, CSRF token, flash message. */
import type { Ctx } from '../http/context.js';
import { csrfToken } from '../http/auth.js';
import { forbidden } from '../http/errors.js';
import type { Permission } from '../staff/roles.js';
import { LOCALES, type Locale, type Renderer } from './render.js';

export interface NavItem {
  href: string;
  /** key in templates/console/locales/*.json */
  label: string;
  permission: Permission | null;
}

/** The console's navigation. Each domain adds its pages here, in menu order. */
export const NAV: NavItem[] = [
  { href: '/dashboard', label: 'nav.dashboard', permission: 'reports.read' },
  { href: '/reports/weekly', label: 'nav.weekly', permission: 'reports.read' },
  { href: '/simulator', label: 'nav.simulator', permission: 'simulator.use' },
  { href: '/contacts', label: 'nav.contacts', permission: 'contacts.read' },
  { href: '/lists', label: 'nav.lists', permission: 'reports.read' },
  { href: '/contact-fields', label: 'nav.contactFields', permission: 'contacts.read' },
  { href: '/segments', label: 'nav.segments', permission: 'contacts.read' },
  { href: '/imports', label: 'nav.imports', permission: 'contacts.read' },
  { href: '/exports', label: 'nav.exports', permission: 'contacts.export' },
  { href: '/inbox', label: 'nav.inbox', permission: 'inbox.read' },
  { href: '/messages', label: 'nav.messages', permission: 'messages.write' },
  { href: '/faq', label: 'nav.faq', permission: 'messages.write' },
  { href: '/broadcasts', label: 'nav.broadcasts', permission: 'reports.read' },
  { href: '/surveys', label: 'nav.surveys', permission: 'surveys.results' },
  { href: '/survey-runs', label: 'nav.surveyRuns', permission: 'surveys.results' },
  { href: '/complaints', label: 'nav.complaints', permission: 'complaints.read' },
  { href: '/referrals', label: 'nav.referrals', permission: 'complaints.read' },
  { href: '/referral-services', label: 'nav.referralServices', permission: 'complaints.read' },
  { href: '/pss', label: 'nav.pss', permission: 'complaints.sensitive' },
  { href: '/cash', label: 'nav.cash', permission: 'reports.read' },
  { href: '/staff/users', label: 'nav.users', permission: 'staff.manage' },
  { href: '/staff/tokens', label: 'nav.tokens', permission: 'staff.manage' },
  { href: '/audit', label: 'nav.audit', permission: 'audit.read' },
];

/**
 * The menu's sections: each NAV entry goes in the first group one of whose paths starts its href
 * (entries no group names go under "More"), so a domain adding a page needs no change here.
 */
export const NAV_GROUPS: { label: string; paths: string[] }[] = [
  { label: 'navGroup.overview', paths: ['/dashboard', '/reports', '/simulator', '/'] },
  { label: 'navGroup.people', paths: ['/contacts', '/lists', '/contact-fields', '/segments', '/imports', '/exports'] },
  { label: 'navGroup.messaging', paths: ['/messages', '/faq', '/broadcasts', '/inbox'] },
  { label: 'navGroup.surveys', paths: ['/surveys', '/survey-runs'] },
  { label: 'navGroup.cash', paths: ['/cash'] },
  { label: 'navGroup.complaints', paths: ['/complaints', '/referrals', '/referral-services', '/pss'] },
  { label: 'navGroup.admin', paths: ['/staff', '/audit', '/settings'] },
];

const inGroup = (href: string, path: string) => (path === '/' ? href === '/' : href === path || href.startsWith(path + '/') || href.startsWith(path + '?'));

/** The signed-in user's menu, in sections, with the current page marked. */
export function navGroups(nav: (NavItem & { current: boolean })[]): { label: string; current: boolean; items: (NavItem & { current: boolean })[] }[] {
  const groups = NAV_GROUPS.map((g) => ({ label: g.label, current: false, items: [] as (NavItem & { current: boolean })[] }));
  const more = { label: 'navGroup.more', current: false, items: [] as (NavItem & { current: boolean })[] };
  for (const n of nav) {
    const i = NAV_GROUPS.findIndex((g) => g.paths.some((p) => inGroup(n.href, p)));
    (i >= 0 ? groups[i] : more).items.push(n);
  }
  return [...groups, more].filter((g) => g.items.length).map((g) => ({ ...g, current: g.items.some((n) => n.current) }));
}

const FLASH_COOKIE = 'ayni_flash';

export function localeOf(ctx: Ctx): Locale {
  const fromSession = ctx.state.session?.locale;
  if (fromSession && (LOCALES as readonly string[]).includes(fromSession)) return fromSession as Locale;
  const chosen = ctx.cookies.get('ayni_lang');
  if (chosen && (LOCALES as readonly string[]).includes(chosen)) return chosen as Locale;
  return (ctx.acceptsLanguages([...LOCALES]) || 'en') as Locale;
}

/** Leaves a one-line message (a locale key, never personal data) for the next page. */
export function flash(ctx: Ctx, key: string, kind: 'ok' | 'error' = 'ok'): void {
  ctx.cookies.set(FLASH_COOKIE, `${kind}:${key}`, { httpOnly: true, sameSite: 'lax', secure: ctx.services.config.COOKIE_SECURE, maxAge: 60_000 });
}

export function render(ctx: Ctx, renderer: Renderer, page: string, data: Record<string, unknown> = {}, status = 200): void {
  const locale = localeOf(ctx);
  const raw = ctx.cookies.get(FLASH_COOKIE);
  if (raw) ctx.cookies.set(FLASH_COOKIE, null);
  const [kind, key] = raw ? raw.split(':', 2) : [];
  const perms = ctx.state.permissions ?? [];
  const nav = ctx.state.session
    ? NAV.filter((n) => n.permission === null || perms.includes(n.permission)).map((n) => ({
        ...n,
        // The home page (/) is the dashboard.
        current: n.href === '/' ? ctx.path === '/' : (ctx.path === '/' ? '/dashboard' : ctx.path) === n.href || ctx.path.startsWith(n.href + '/') || ctx.path.startsWith(n.href + '.'),
      }))
    : [];
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = renderer.render(page, {
    ...data,
    locale,
    otherLocale: locale === 'en' ? 'es' : 'en',
    user: ctx.state.session ? { name: ctx.state.session.name, role: ctx.state.actor?.role } : null,
    permissions: perms,
    nav,
    navGroups: navGroups(nav),
    csrf: csrfToken(ctx),
    flash: key ? { kind, message: renderer.t(locale, key) } : null,
    path: ctx.path,
  });
}

/** For console routes: signed-in staff with the permission, else the login page or a 403 page. */
export function needs(permission: Permission | null) {
  return async (ctx: Ctx, next: () => Promise<unknown>) => {
    if (!ctx.state.session) {
      ctx.redirect(`/login?next=${encodeURIComponent(ctx.originalUrl)}`);
      return;
    }
    if (permission && !ctx.state.permissions?.includes(permission)) {
      ctx.state.html = true;
      throw forbidden();
    }
    return next();
  };
}
