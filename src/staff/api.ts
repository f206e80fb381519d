/** /api/v1 routes for staff users, API tokens and the audit log. */
import { z } from 'zod';
import { Api, idParam } from '../http/api.js';
import { listAudit } from './audit.js';
import { ROLES } from './roles.js';
import { createToken, createUser, listTokens, listUsers, newTokenSchema, newUserSchema, revokeToken, updateUser, updateUserSchema } from './service.js';

const user = z.object({
  id: z.number(), email: z.string(), name: z.string(), role: z.enum(ROLES), locale: z.string(), active: z.boolean(),
  lastLoginAt: z.string().nullable(), createdAt: z.string(),
});
const token = z.object({
  id: z.number(), name: z.string(), prefix: z.string(), role: z.enum(ROLES), createdAt: z.string(),
  lastUsedAt: z.string().nullable(), revokedAt: z.string().nullable(),
});

export function registerStaffApi(api: Api): void {
  api.route({
    method: 'get', path: '/me', tag: 'staff', summary: 'Who the caller is and what it may do', permission: null,
    response: z.object({ type: z.string(), id: z.number().nullable(), label: z.string(), role: z.string(), permissions: z.array(z.string()) }),
    handler: async (ctx) => {
      const a = ctx.state.actor!;
      return { type: a.type, id: a.id, label: a.label, role: a.role, permissions: ctx.state.permissions ?? [] };
    },
  });
  api.route({
    method: 'get', path: '/staff/users', tag: 'staff', summary: 'List staff users', permission: 'staff.manage',
    response: z.object({ data: z.array(user) }),
    handler: async (ctx) => ({ data: await listUsers(ctx.services.db) }),
  });
  api.route({
    method: 'post', path: '/staff/users', tag: 'staff', summary: 'Create a staff user (a generated password is returned once)', permission: 'staff.manage',
    body: newUserSchema, status: 201,
    response: z.object({ data: user, password: z.string().optional() }),
    handler: async (ctx, { body }) => {
      const created = await createUser(ctx.services.db, ctx.state.actor!, body);
      return { data: created.user, password: body.password ? undefined : created.password };
    },
  });
  api.route({
    method: 'patch', path: '/staff/users/:id', tag: 'staff', summary: 'Change a staff user', permission: 'staff.manage',
    params: idParam, body: updateUserSchema, response: z.object({ data: user }),
    handler: async (ctx, { params, body }) => ({ data: await updateUser(ctx.services.db, ctx.state.actor!, params.id, body) }),
  });
  api.route({
    method: 'get', path: '/tokens', tag: 'staff', summary: 'List API tokens (never their secrets)', permission: 'staff.manage',
    response: z.object({ data: z.array(token) }),
    handler: async (ctx) => ({ data: await listTokens(ctx.services.db) }),
  });
  api.route({
    method: 'post', path: '/tokens', tag: 'staff', summary: 'Create an API token; the secret is returned once', permission: 'staff.manage',
    body: newTokenSchema, status: 201, response: z.object({ data: token, secret: z.string() }),
    handler: async (ctx, { body }) => {
      const created = await createToken(ctx.services.db, ctx.state.actor!, body);
      return { data: created.token, secret: created.secret };
    },
  });
  api.route({
    method: 'post', path: '/tokens/:id/revoke', tag: 'staff', summary: 'Revoke an API token', permission: 'staff.manage',
    params: idParam, response: z.object({ data: token }),
    handler: async (ctx, { params }) => ({ data: await revokeToken(ctx.services.db, ctx.state.actor!, params.id) }),
  });
  api.route({
    method: 'get', path: '/audit', tag: 'staff', summary: 'Audit events, newest first', permission: 'audit.read',
    query: z.object({
      action: z.string().max(64).optional(),
      entityType: z.string().max(64).optional(),
      entityId: z.string().max(64).optional(),
      before: z.coerce.number().int().positive().optional(),
      limit: z.coerce.number().int().min(1).max(500).optional(),
    }),
    handler: async (ctx, { query }) => {
      const rows = await listAudit(ctx.services.db, query);
      return { data: rows, next: rows.length === (query.limit ?? 50) ? rows[rows.length - 1].id : null };
    },
  });
}
