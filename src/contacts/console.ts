/**
 * Console pages for contacts (search, detail with consent history and subscriptions, rectify,
 * erase), custom contact fields and lists (create, edit, subscriber counts). Same services and
 * audit events as the API.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { messageLanguages } from '../messaging/texts.js';
import { audit } from '../staff/audit.js';
import { setContactStatus } from './api.js';
import { CONSENT_PURPOSES, consentHistory, currentConsents } from './consent.js';
import { CONTACT_STATUSES, addAddress, createContact, requireContact, searchContacts, updateContact } from './contacts.js';
import { FIELD_TYPES, createField, listFields } from './fields.js';
import { createList, listLists, requireList, subscriptionsOf, updateList, type List } from './lists.js';
import { eraseContact } from './rights.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string>;
const PAGE = 50;

/** Runs fn; a validation or conflict error re-renders the form with its details instead of an error page. */
async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; errors: Record<string, unknown> }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof HttpError && (e.status === 400 || e.status === 409)) return { ok: false, status: e.status, errors: e.details ?? { request: e.message } };
    throw e;
  }
}

const words = (s: string | undefined) => (s ?? '').split(/[,\s]+/).map((w) => w.trim()).filter(Boolean);

function listForm(b: Record<string, string>, languages: string[]) {
  const perLang = (prefix: string) => Object.fromEntries(languages.map((l) => [l, (b[`${prefix}_${l}`] ?? '').trim()]).filter(([, v]) => v));
  return {
    name: b.name,
    description: b.description?.trim() || null,
    purpose: b.purpose as (typeof CONSENT_PURPOSES)[number],
    keywords: Object.fromEntries(languages.map((l) => [l, words(b[`keywords_${l}`])]).filter(([, v]) => v.length)),
    doubleOptIn: b.double_opt_in === 'true',
    welcome: perLang('welcome'),
    prompt: perLang('prompt'),
    frequency: perLang('frequency'),
    defaultLanguage: b.default_language,
    isDefault: b.is_default === 'true',
  };
}

/** The create form's values after a failed submit (or empty), shaped like `listView` for the shared partial. */
function newListForm(b: Record<string, string> | null, languages: string[], defaultLanguage: string) {
  return {
    key: b?.key ?? '',
    name: b?.name ?? '',
    description: b?.description ?? '',
    purpose: b?.purpose ?? 'updates',
    singleOptIn: b?.double_opt_in === 'false',
    defaultLanguage: b?.default_language ?? defaultLanguage,
    isDefault: b?.is_default === 'true',
    perLanguage: languages.map((lang) => ({
      lang,
      keywords: b?.[`keywords_${lang}`] ?? '',
      welcome: b?.[`welcome_${lang}`] ?? '',
      prompt: b?.[`prompt_${lang}`] ?? '',
      frequency: b?.[`frequency_${lang}`] ?? '',
    })),
  };
}

function listView(l: List, languages: string[]) {
  return {
    ...l,
    singleOptIn: !l.doubleOptIn,
    perLanguage: languages.map((lang) => ({
      lang,
      keywords: (l.keywords[lang] ?? []).join(', '),
      welcome: l.welcome[lang] ?? '',
      prompt: l.prompt[lang] ?? '',
      frequency: l.frequency[lang] ?? '',
    })),
    keywordText: Object.entries(l.keywords).map(([lang, w]) => `${lang}: ${w.join(', ')}`).join(' · '),
  };
}

export function contactsConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);

  // ------------------------------------------------------------------------------ contacts
  const contactsPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.slice(0, 100) : '';
    const statusFilter = typeof ctx.query.status === 'string' && (CONTACT_STATUSES as readonly string[]).includes(ctx.query.status) ? (ctx.query.status as (typeof CONTACT_STATUSES)[number]) : undefined;
    const before = Number(ctx.query.before) || undefined;
    const result = await searchContacts(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, { q, status: statusFilter, before, limit: PAGE });
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.search', entityType: 'contact', detail: { results: result.data.length, searched: Boolean(q) } });
    const nextQuery = result.next ? new URLSearchParams({ ...(q ? { q } : {}), ...(statusFilter ? { status: statusFilter } : {}), before: String(result.next) }).toString() : null;
    view(ctx, 'contacts/index', { title: 'nav.contacts', contacts: result.data, q, status: statusFilter, statuses: CONTACT_STATUSES, nextQuery, canWrite: ctx.state.permissions?.includes('contacts.write'), ...extra }, status);
  };

  r.get('/contacts', needs('contacts.read'), h((ctx) => contactsPage(ctx)));

  r.post('/contacts', needs('contacts.write'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() =>
      createContact(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, {
        name: b.name || null,
        language: b.language || null,
        addresses: b.address ? [{ medium: b.medium === 'whatsapp' ? 'whatsapp' : 'sms', kind: 'phone', address: b.address }] : [],
      }),
    );
    if (!res.ok) return contactsPage(ctx, { form: b, errors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.create', entityType: 'contact', entityId: res.value.id, detail: { addresses: res.value.addresses.length } });
    flash(ctx, 'flash.saved');
    ctx.redirect(`/contacts/${res.value.id}`);
  }));

  const contactPage = async (ctx: Ctx, id: number, extra: Record<string, unknown> = {}, status = 200) => {
    const { knex } = ctx.services.db;
    const contact = await requireContact(knex, id);
    const defs = await listFields(knex);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.read', entityType: 'contact', entityId: id });
    const perms = ctx.state.permissions ?? [];
    view(ctx, 'contacts/detail', {
      title: 'contacts.detail',
      contact,
      fields: defs.map((d) => ({ ...d, value: contact.fields[d.key] ?? '', isChoice: d.type === 'choice', inputType: d.type === 'number' ? 'number' : d.type === 'date' ? 'date' : 'text' })),
      consents: await currentConsents(knex, id),
      history: await consentHistory(knex, id),
      subscriptions: await subscriptionsOf(knex, id),
      statuses: CONTACT_STATUSES,
      languages: messageLanguages(),
      canWrite: perms.includes('contacts.write') && !contact.erasedAt,
      canErase: perms.includes('contacts.erase') && !contact.erasedAt,
      ...extra,
    }, status);
  };

  r.get('/contacts/:id', needs('contacts.read'), h(async (ctx) => contactPage(ctx, Number(ctx.params.id))));

  r.post('/contacts/:id', needs('contacts.write'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    const b = body(ctx);
    const defs = await listFields(ctx.services.db.knex);
    const fields = Object.fromEntries(defs.filter((d) => `field_${d.key}` in b).map((d) => [d.key, b[`field_${d.key}`]]));
    const res = await attempt(async () => {
      const u = await updateContact(ctx.services.db.knex, id, { name: b.name ?? undefined, language: b.language || null, timezone: b.timezone || null, fields });
      if (b.status && (CONTACT_STATUSES as readonly string[]).includes(b.status)) {
        const before = u.contact.status;
        await setContactStatus(ctx, id, b.status as (typeof CONTACT_STATUSES)[number]);
        if (before !== b.status) u.changed.push('status');
      }
      return u;
    });
    if (!res.ok) return contactPage(ctx, id, { errors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.update', entityType: 'contact', entityId: id, detail: { changed: res.value.changed } });
    flash(ctx, 'flash.saved');
    ctx.redirect(`/contacts/${id}`);
  }));

  r.post('/contacts/:id/addresses', needs('contacts.write'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    const b = body(ctx);
    const res = await attempt(() => addAddress(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, id, { medium: b.medium === 'whatsapp' ? 'whatsapp' : 'sms', kind: b.kind === 'wa_user' ? 'wa_user' : 'phone', address: b.address ?? '' }));
    if (!res.ok) return contactPage(ctx, id, { addressErrors: res.errors, addressForm: b }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.address.add', entityType: 'contact', entityId: id, detail: { addressId: res.value.id, medium: res.value.medium } });
    flash(ctx, 'flash.saved');
    ctx.redirect(`/contacts/${id}`);
  }));

  r.post('/contacts/:id/erase', needs('contacts.erase'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    if (body(ctx).confirm !== 'yes') return contactPage(ctx, id, { eraseError: true }, 400);
    await eraseContact(ctx.services.db, ctx.state.actor!, id);
    flash(ctx, 'flash.erased');
    ctx.redirect(`/contacts/${id}`);
  }));

  // ------------------------------------------------------------------------ contact fields
  const fieldsPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) =>
    view(ctx, 'contacts/fields', { title: 'nav.contactFields', fields: await listFields(ctx.services.db.knex), types: FIELD_TYPES, canWrite: ctx.state.permissions?.includes('contacts.write'), ...extra }, status);

  r.get('/contact-fields', needs('contacts.read'), h((ctx) => fieldsPage(ctx)));
  r.post('/contact-fields', needs('contacts.write'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() => createField(ctx.services.db.knex, { key: b.key ?? '', label: b.label ?? '', type: b.type as (typeof FIELD_TYPES)[number], choices: b.type === 'choice' ? (b.choices ?? '').split(/\r?\n|,/).map((c) => c.trim()).filter(Boolean) : undefined }));
    if (!res.ok) return fieldsPage(ctx, { form: b, errors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'contact_field.create', entityType: 'contact_field', entityId: res.value.id, detail: { key: res.value.key, type: res.value.type } });
    flash(ctx, 'flash.saved');
    ctx.redirect('/contact-fields');
  }));

  // --------------------------------------------------------------------------------- lists
  const listsPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const languages = messageLanguages();
    view(ctx, 'contacts/lists', {
      title: 'nav.lists',
      lists: (await listLists(ctx.services.db.knex)).map((l) => listView(l, languages)),
      purposes: CONSENT_PURPOSES,
      languages,
      canManage: ctx.state.permissions?.includes('lists.manage'),
      ...extra,
      form: newListForm((extra.form as Record<string, string> | undefined) ?? null, languages, ctx.services.config.DEFAULT_LANGUAGE),
    }, status);
  };
  r.get('/lists', needs('reports.read'), h((ctx) => listsPage(ctx)));
  r.post('/lists', needs('lists.manage'), h(async (ctx) => {
    const b = body(ctx);
    const res = await attempt(() => createList(ctx.services.db.knex, { key: b.key ?? '', ...listForm(b, messageLanguages()) }));
    if (!res.ok) return listsPage(ctx, { form: b, errors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'list.create', entityType: 'list', entityId: res.value.id, detail: { key: res.value.key } });
    flash(ctx, 'flash.saved');
    ctx.redirect(`/lists/${res.value.id}`);
  }));

  const listPage = async (ctx: Ctx, id: number, extra: Record<string, unknown> = {}, status = 200) => {
    const languages = messageLanguages();
    const list = await requireList(ctx.services.db.knex, id);
    view(ctx, 'contacts/list', { title: 'nav.lists', list: listView(list, languages), purposes: CONSENT_PURPOSES, languages, canManage: ctx.state.permissions?.includes('lists.manage'), canReadContacts: ctx.state.permissions?.includes('contacts.read'), ...extra }, status);
  };
  r.get('/lists/:id', needs('reports.read'), h((ctx) => listPage(ctx, Number(ctx.params.id))));
  r.post('/lists/:id', needs('lists.manage'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    const b = body(ctx);
    const res = await attempt(() => updateList(ctx.services.db.knex, id, { ...listForm(b, messageLanguages()), ...(b.is_default === 'true' ? {} : { isDefault: undefined }), archived: b.archived === 'true' }));
    if (!res.ok) return listPage(ctx, id, { errors: res.errors }, res.status);
    await audit(ctx.services.db, ctx.state.actor!, { action: 'list.update', entityType: 'list', entityId: id });
    flash(ctx, 'flash.saved');
    ctx.redirect(`/lists/${id}`);
  }));

  return r;
}
