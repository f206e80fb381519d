/**
 * /api/v1 routes for contacts, their consents and data-subject rights, custom field definitions
 * and lists. Every route that shows or changes a contact's personal data writes an audit event
 * (identifiers and counts only).
 */
import { z } from 'zod';
import { Api, idParam } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import { HttpError } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { CONSENT_CHANNELS, CONSENT_PURPOSES, LEGAL_BASES, consentHistory, currentConsents, recordConsent } from './consent.js';
import {
  CONTACT_STATUSES, addAddress, addressInputSchema, createContact, newContactSchema, removeAddress, requireContact, searchContacts,
  updateContact, updateContactSchema,
} from './contacts.js';
import { createField, deleteField, listFields, newFieldSchema, updateField, updateFieldSchema } from './fields.js';
import { createList, listInputSchema, listLists, listUpdateSchema, requireList, subscriptionsOf, updateList } from './lists.js';
import { eraseContact, exportContactData } from './rights.js';
import { stopContact } from './stop.js';

export const staffUserIdOf = (a: Actor): number | null => (a.type === 'staff' ? a.id : (a.userId ?? null));

export const contactPatchSchema = updateContactSchema.extend({ status: z.enum(CONTACT_STATUSES).optional() });

export const operatorConsentSchema = z.object({
  purpose: z.enum(CONSENT_PURPOSES),
  action: z.enum(['grant', 'withdraw']),
  legalBasis: z.enum(LEGAL_BASES).default('consent'),
  /** How the person told staff: by phone, a paper or web form, in person (console). */
  channel: z.enum(CONSENT_CHANNELS).default('phone'),
  method: z.enum(['operator', 'web_form']).default('operator'),
  wording: z.object({ key: z.string().min(1).max(64), version: z.string().min(1).max(32), language: z.string().min(2).max(16) }).optional(),
  proxy: z.boolean().default(false),
});

/** Changes a contact's status the way a staff member means it: "stopped" is a full stop (consent withdrawn). */
export async function setContactStatus(ctx: Ctx, contactId: number, status: (typeof CONTACT_STATUSES)[number]): Promise<void> {
  const { knex } = ctx.services.db;
  const actor = ctx.state.actor!;
  const current = await requireContact(knex, contactId);
  if (current.status === status) return;
  if (current.erasedAt) throw new HttpError(409, 'conflict', 'This contact was erased');
  await knex.transaction(async (trx) => {
    if (status === 'stopped') {
      await stopContact(trx, contactId, { method: 'operator', channel: 'console', evidence: { type: 'staff', ref: `${actor.type} ${actor.id ?? ''}`.trim() }, staffUserId: staffUserIdOf(actor), reason: 'staff' });
    } else {
      // Back to active gives no consent: messages need a consent recorded for their purpose.
      await trx('contacts').where('id', contactId).update({ status, stopped_at: status === 'active' ? null : current.stoppedAt, updated_at: new Date() });
    }
  });
}

export function registerContactsApi(api: Api): void {
  // ------------------------------------------------------------------------------ contacts
  api.route({
    method: 'get', path: '/contacts', tag: 'contacts', summary: 'Search contacts (by number, WhatsApp id or part of the name), newest first', permission: 'contacts.read',
    query: z.object({
      q: z.string().max(100).optional(),
      status: z.enum(CONTACT_STATUSES).optional(),
      list: z.coerce.number().int().positive().optional(),
      before: z.coerce.number().int().positive().optional(),
      limit: z.coerce.number().int().min(1).max(200).optional(),
    }),
    handler: async (ctx, { query }) => {
      const r = await searchContacts(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, { q: query.q, status: query.status, listId: query.list, before: query.before, limit: query.limit });
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.search', entityType: 'contact', detail: { results: r.data.length, searched: Boolean(query.q), list: query.list ?? null } });
      return r;
    },
  });
  api.route({
    method: 'post', path: '/contacts', tag: 'contacts', summary: 'Create a contact with its addresses and field values', permission: 'contacts.write',
    body: newContactSchema, status: 201,
    handler: async (ctx, { body }) => {
      const c = await createContact(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.create', entityType: 'contact', entityId: c.id, detail: { addresses: c.addresses.length, fields: Object.keys(c.fields) } });
      return { data: c };
    },
  });
  api.route({
    method: 'get', path: '/contacts/:id', tag: 'contacts', summary: 'One contact, with current consents and subscriptions', permission: 'contacts.read',
    params: idParam,
    handler: async (ctx, { params }) => {
      const { knex } = ctx.services.db;
      const c = await requireContact(knex, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.read', entityType: 'contact', entityId: c.id });
      return { data: { ...c, consents: await currentConsents(knex, c.id), subscriptions: await subscriptionsOf(knex, c.id) } };
    },
  });
  api.route({
    method: 'patch', path: '/contacts/:id', tag: 'contacts', summary: 'Rectify a contact (name, language, time zone, fields) or change its status', permission: 'contacts.write',
    params: idParam, body: contactPatchSchema,
    handler: async (ctx, { params, body }) => {
      const { status, ...rest } = body;
      const { contact, changed } = await updateContact(ctx.services.db.knex, params.id, rest);
      if (status) {
        await setContactStatus(ctx, params.id, status);
        changed.push('status');
      }
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.update', entityType: 'contact', entityId: params.id, detail: { changed, ...(status ? { status } : {}) } });
      return { data: status ? await requireContact(ctx.services.db.knex, params.id) : contact };
    },
  });
  api.route({
    method: 'post', path: '/contacts/:id/addresses', tag: 'contacts', summary: 'Add a phone number or WhatsApp id to a contact', permission: 'contacts.write',
    params: idParam, body: addressInputSchema, status: 201,
    handler: async (ctx, { params, body }) => {
      const a = await addAddress(ctx.services.db.knex, ctx.services.config.DEFAULT_COUNTRY, params.id, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.address.add', entityType: 'contact', entityId: params.id, detail: { addressId: a.id, medium: a.medium } });
      return { data: a };
    },
  });
  api.route({
    method: 'delete', path: '/contacts/:id/addresses/:addressId', tag: 'contacts', summary: 'Remove an address from a contact', permission: 'contacts.write',
    params: z.object({ id: z.coerce.number().int().positive(), addressId: z.coerce.number().int().positive() }), status: 204,
    handler: async (ctx, { params }) => {
      await removeAddress(ctx.services.db.knex, params.id, params.addressId);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.address.remove', entityType: 'contact', entityId: params.id, detail: { addressId: params.addressId } });
    },
  });
  api.route({
    method: 'get', path: '/contacts/:id/consents', tag: 'contacts', summary: 'Current consent per purpose and the whole ledger, oldest first', permission: 'contacts.read',
    params: idParam,
    handler: async (ctx, { params }) => {
      const { knex } = ctx.services.db;
      await requireContact(knex, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact.consents.read', entityType: 'contact', entityId: params.id });
      return { data: { current: await currentConsents(knex, params.id), history: await consentHistory(knex, params.id) } };
    },
  });
  api.route({
    method: 'post', path: '/contacts/:id/consents', tag: 'contacts', summary: 'Record a consent or withdrawal the person gave to staff (phone, form, in person)', permission: 'contacts.write',
    params: idParam, body: operatorConsentSchema, status: 201,
    handler: async (ctx, { params, body }) => {
      const { knex } = ctx.services.db;
      const c = await requireContact(knex, params.id);
      if (c.erasedAt) throw new HttpError(409, 'conflict', 'This contact was erased');
      const actor = ctx.state.actor!;
      const id = await recordConsent(knex, {
        contactId: c.id, purpose: body.purpose, action: body.action, legalBasis: body.legalBasis, channel: body.channel, method: body.method,
        wording: body.wording ?? null, evidence: { type: 'staff', ref: `${actor.type} ${actor.id ?? ''}`.trim() }, proxy: body.proxy, staffUserId: staffUserIdOf(actor),
      });
      await audit(ctx.services.db, actor, { action: 'contact.consent.record', entityType: 'contact', entityId: c.id, detail: { consentId: id, purpose: body.purpose, action: body.action } });
      return { data: (await consentHistory(knex, c.id)).find((r) => r.id === id) };
    },
  });
  api.route({
    method: 'get', path: '/contacts/:id/export', tag: 'contacts', summary: 'Everything held about one contact, as JSON (subject access)', permission: 'contacts.read',
    params: idParam,
    handler: async (ctx, { params }) => {
      const data = await exportContactData(ctx.services.db, ctx.state.actor!, params.id);
      ctx.set('Content-Disposition', `attachment; filename="contact-${params.id}.json"`);
      return data;
    },
  });
  api.route({
    method: 'post', path: '/contacts/:id/erase', tag: 'contacts', summary: 'Erase a contact’s personal data (keeps anonymous figures and the consent ledger)', permission: 'contacts.erase',
    params: idParam, body: z.object({ confirm: z.literal(true, { message: 'must be true: erasure cannot be undone' }) }),
    handler: async (ctx, { params }) => ({ data: await eraseContact(ctx.services.db, ctx.state.actor!, params.id) }),
  });

  // ------------------------------------------------------------------------ contact fields
  api.route({
    method: 'get', path: '/contact-fields', tag: 'contacts', summary: 'Custom contact field definitions', permission: 'contacts.read',
    handler: async (ctx) => ({ data: await listFields(ctx.services.db.knex) }),
  });
  api.route({
    method: 'post', path: '/contact-fields', tag: 'contacts', summary: 'Define a custom contact field (text, number, date, choice)', permission: 'contacts.write',
    body: newFieldSchema, status: 201,
    handler: async (ctx, { body }) => {
      const f = await createField(ctx.services.db.knex, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact_field.create', entityType: 'contact_field', entityId: f.id, detail: { key: f.key, type: f.type } });
      return { data: f };
    },
  });
  api.route({
    method: 'patch', path: '/contact-fields/:id', tag: 'contacts', summary: 'Change a field’s label or choices', permission: 'contacts.write',
    params: idParam, body: updateFieldSchema,
    handler: async (ctx, { params, body }) => {
      const f = await updateField(ctx.services.db.knex, params.id, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact_field.update', entityType: 'contact_field', entityId: f.id });
      return { data: f };
    },
  });
  api.route({
    method: 'delete', path: '/contact-fields/:id', tag: 'contacts', summary: 'Delete a field no contact has a value for', permission: 'contacts.write',
    params: idParam, status: 204,
    handler: async (ctx, { params }) => {
      await deleteField(ctx.services.db.knex, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'contact_field.delete', entityType: 'contact_field', entityId: params.id });
    },
  });

  // --------------------------------------------------------------------------------- lists
  api.route({
    method: 'get', path: '/lists', tag: 'lists', summary: 'Lists with their subscriber counts', permission: 'reports.read',
    query: z.object({ archived: z.enum(['true', 'false']).optional() }),
    handler: async (ctx, { query }) => ({ data: await listLists(ctx.services.db.knex, { includeArchived: query.archived === 'true' }) }),
  });
  api.route({
    method: 'get', path: '/lists/:id', tag: 'lists', summary: 'One list with its subscriber count', permission: 'reports.read',
    params: idParam,
    handler: async (ctx, { params }) => ({ data: await requireList(ctx.services.db.knex, params.id) }),
  });
  api.route({
    method: 'post', path: '/lists', tag: 'lists', summary: 'Create a list', permission: 'lists.manage',
    body: listInputSchema, status: 201,
    handler: async (ctx, { body }) => {
      const l = await createList(ctx.services.db.knex, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'list.create', entityType: 'list', entityId: l.id, detail: { key: l.key } });
      return { data: l };
    },
  });
  api.route({
    method: 'patch', path: '/lists/:id', tag: 'lists', summary: 'Change a list (or archive it with {"archived":true})', permission: 'lists.manage',
    params: idParam, body: listUpdateSchema,
    handler: async (ctx, { params, body }) => {
      const l = await updateList(ctx.services.db.knex, params.id, body);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'list.update', entityType: 'list', entityId: l.id, detail: { changed: Object.keys(body) } });
      return { data: l };
    },
  });
}
