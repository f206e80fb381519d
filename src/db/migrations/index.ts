/**
 * Every migration, in the order it applies. Append new ones at the end; never edit one that
 * has shipped. Names start with a UTC timestamp so that they sort in order.
 */
import { Migration20261122000100_staff } from './Migration20261122000100_staff.js';
import { Migration20261122000200_contacts } from './Migration20261122000200_contacts.js';
import { Migration20261122000300_messaging } from './Migration20261122000300_messaging.js';
import { Migration20261122000600_contacts_consent } from './Migration20261122000600_contacts_consent.js';
import { Migration20261122010500_segments_imports } from './Migration20261122010500_segments_imports.js';
import { Migration20261122011000_surveys } from './Migration20261122011000_surveys.js';
import { Migration20261122000800_complaints } from './Migration20261122000800_complaints.js';
import { Migration20261122011500_broadcasts } from './Migration20261122011500_broadcasts.js';
import { Migration20261122020000_cash } from './Migration20261122020000_cash.js';
import { Migration20261122030000_reports } from './Migration20261122030000_reports.js';
import { Migration20261122040000_import_speed } from './Migration20261122040000_import_speed.js';
import { Migration20261122050000_inbox } from './Migration20261122050000_inbox.js';

export const migrationsList = [
  { name: 'Migration20261122000100_staff', class: Migration20261122000100_staff },
  { name: 'Migration20261122000200_contacts', class: Migration20261122000200_contacts },
  { name: 'Migration20261122000300_messaging', class: Migration20261122000300_messaging },
  { name: 'Migration20261122000600_contacts_consent', class: Migration20261122000600_contacts_consent },
  { name: 'Migration20261122010500_segments_imports', class: Migration20261122010500_segments_imports },
  { name: 'Migration20261122011000_surveys', class: Migration20261122011000_surveys },
  { name: 'Migration20261122000800_complaints', class: Migration20261122000800_complaints },
  { name: 'Migration20261122011500_broadcasts', class: Migration20261122011500_broadcasts },
  { name: 'Migration20261122020000_cash', class: Migration20261122020000_cash },
  { name: 'Migration20261122030000_reports', class: Migration20261122030000_reports },
  { name: 'Migration20261122040000_import_speed', class: Migration20261122040000_import_speed },
  { name: 'Migration20261122050000_inbox', class: Migration20261122050000_inbox },
];
