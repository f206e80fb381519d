/**
 * Roles and what each may do. One role per staff user or API token. Routes ask for a
 * permission, never for a role, so that a role's reach is read in one place: here.
 */
export const ROLES = ['admin', 'editor', 'broadcaster', 'cash', 'complaints', 'focal_point', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'staff.manage', // staff users, API tokens
  'audit.read',
  'settings.manage',
  'contacts.read', // personal data of contacts
  'contacts.write',
  'contacts.export',
  'contacts.erase',
  'lists.manage',
  'messages.write', // key-message bank: drafts
  'messages.approve',
  'broadcasts.send',
  'surveys.manage',
  'surveys.results',
  'cash.manage',
  'complaints.read',
  'complaints.manage',
  'complaints.sensitive', // the only way to see a sensitive complaint
  'inbox.read', // the staff inbox: conversations no automatic step answered
  'inbox.reply', // claim, reply, tag, mark rumours, close
  'reports.read', // aggregate figures, no personal data
  'simulator.use', // the console's phone simulator: write as a test contact
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const ALL_BUT_SENSITIVE = PERMISSIONS.filter((p) => p !== 'complaints.sensitive');

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ALL_BUT_SENSITIVE,
  editor: ['contacts.read', 'lists.manage', 'messages.write', 'messages.approve', 'surveys.manage', 'surveys.results', 'inbox.read', 'inbox.reply', 'reports.read', 'simulator.use'],
  broadcaster: ['contacts.read', 'messages.write', 'broadcasts.send', 'inbox.read', 'inbox.reply', 'reports.read', 'simulator.use'],
  cash: ['contacts.read', 'contacts.export', 'cash.manage', 'surveys.results', 'reports.read', 'simulator.use'],
  complaints: ['contacts.read', 'complaints.read', 'complaints.manage', 'inbox.read', 'inbox.reply', 'reports.read', 'simulator.use'],
  focal_point: ['contacts.read', 'complaints.read', 'complaints.manage', 'complaints.sensitive', 'inbox.read', 'inbox.reply', 'reports.read', 'simulator.use'],
  viewer: ['reports.read'],
};

export function can(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
