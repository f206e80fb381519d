import { EntitySchema } from '@mikro-orm/core';
import type { Role } from './roles.js';

export class StaffUser {
  id!: number;
  email!: string;
  name!: string;
  passwordHash!: string;
  role!: Role;
  locale: string = 'en';
  active: boolean = true;
  lastLoginAt?: Date | null;
  createdAt: Date = new Date();
  updatedAt: Date = new Date();
}

export class StaffSession {
  id!: string;
  user!: StaffUser;
  csrfToken!: string;
  createdAt: Date = new Date();
  expiresAt!: Date;
}

export class ApiToken {
  id!: number;
  name!: string;
  prefix!: string;
  tokenHash!: string;
  role!: Role;
  createdBy?: StaffUser | null;
  createdAt: Date = new Date();
  lastUsedAt?: Date | null;
  revokedAt?: Date | null;
}

export class AuditEvent {
  id!: number;
  at: Date = new Date();
  actorType!: 'staff' | 'token' | 'system' | 'contact';
  actorId?: number | null;
  actorLabel?: string | null;
  action!: string;
  entityType?: string | null;
  entityId?: string | null;
  detail?: string | null;
  requestId?: string | null;
}

const date = { type: 'datetime' } as const;
const optionalDate = { type: 'datetime', nullable: true } as const;

export const StaffUserSchema = new EntitySchema<StaffUser>({
  class: StaffUser,
  tableName: 'staff_users',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    email: { type: 'string', unique: true },
    name: { type: 'string' },
    passwordHash: { type: 'string', hidden: true },
    role: { type: 'string' },
    locale: { type: 'string' },
    active: { type: 'boolean' },
    lastLoginAt: optionalDate,
    createdAt: { ...date, onCreate: () => new Date() },
    updatedAt: { ...date, onCreate: () => new Date(), onUpdate: () => new Date() },
  },
});

export const StaffSessionSchema = new EntitySchema<StaffSession>({
  class: StaffSession,
  tableName: 'staff_sessions',
  properties: {
    id: { type: 'string', primary: true },
    user: { kind: 'm:1', entity: () => StaffUser },
    csrfToken: { type: 'string' },
    createdAt: date,
    expiresAt: date,
  },
});

export const ApiTokenSchema = new EntitySchema<ApiToken>({
  class: ApiToken,
  tableName: 'api_tokens',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    name: { type: 'string' },
    prefix: { type: 'string' },
    tokenHash: { type: 'string', unique: true, hidden: true },
    role: { type: 'string' },
    createdBy: { kind: 'm:1', entity: () => StaffUser, nullable: true },
    createdAt: date,
    lastUsedAt: optionalDate,
    revokedAt: optionalDate,
  },
});

export const AuditEventSchema = new EntitySchema<AuditEvent>({
  class: AuditEvent,
  tableName: 'audit_events',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    at: date,
    actorType: { type: 'string' },
    actorId: { type: 'integer', nullable: true },
    actorLabel: { type: 'string', nullable: true },
    action: { type: 'string' },
    entityType: { type: 'string', nullable: true },
    entityId: { type: 'string', nullable: true },
    detail: { type: 'text', nullable: true },
    requestId: { type: 'string', nullable: true },
  },
});

export const staffEntities = [StaffUserSchema, StaffSessionSchema, ApiTokenSchema, AuditEventSchema];
