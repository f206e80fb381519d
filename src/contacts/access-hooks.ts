/**
 * Subject access: each domain that holds data about a contact (survey answers, complaints, cash
 * distributions) adds an entry here (a small edit, like src/messaging/steps.ts), and the contact's
 * JSON export (`exportContactData`) includes what it returns under `domains.<domain>`.
 * Return plain JSON-serialisable data; sensitive material stays out unless the policy allows it.
 */
import type { Knex } from '../db/orm.js';
import { cashSubjectAccess } from '../cash/contact-hooks.js';

export interface SubjectAccessHook {
  domain: string;
  collect: (knex: Knex, contactId: number) => Promise<unknown>;
}

export const SUBJECT_ACCESS_HOOKS: SubjectAccessHook[] = [
  { domain: 'cash', collect: cashSubjectAccess },
];
