/**
 * The domains that make up the service. Each contributes API routes, console pages and
 * (for channels) webhooks; add a domain here and it is served.
 */
import type Router from '@koa/router';
import type { Api } from './api.js';
import type { AppState } from './context.js';
import type { Renderer } from '../console/render.js';
import { registerStaffApi } from '../staff/api.js';
import { consoleRouter } from '../console/routes.js';
import { webhookRouter } from '../channels/webhooks.js';
import { registerContactsApi } from '../contacts/api.js';
import { contactsConsole } from '../contacts/console.js';
import { registerSegmentsApi, segmentsConsole } from '../contacts/segments-api.js';
import { importsConsole, registerImportsApi } from '../contacts/import-api.js';
import { exportsConsole, registerExportsApi } from '../contacts/export-api.js';
import { registerSurveysApi } from '../surveys/api.js';
import { surveysConsole } from '../surveys/console.js';
import { registerComplaintsApi } from '../complaints/api.js';
import { complaintsConsole } from '../complaints/console.js';
import { publicRouter as complaintsPublic } from '../complaints/public.js';
import { registerBroadcastsApi } from '../broadcasts/api.js';
import { broadcastsConsole } from '../broadcasts/console.js';
import { registerCashApi } from '../cash/api.js';
import { cashConsole, cashUploads } from '../cash/console.js';
import { registerReportsApi } from '../reports/api.js';
import { reportsConsole } from '../reports/console.js';
import { registerSimulatorApi } from '../simulator/api.js';
import { simulatorConsole } from '../simulator/console.js';
import { registerInboxApi } from '../inbox/api.js';
import { inboxConsole } from '../inbox/console.js';

export interface Module {
  name: string;
  api?: (api: Api) => void;
  /** Console pages (signed-in staff, CSRF-protected forms). */
  console?: (renderer: Renderer) => Router<AppState>;
  /** Routes with their own authentication, e.g. provider webhooks (no session, no CSRF). */
  open?: () => Router<AppState>;
}

export const modules: Module[] = [
  { name: 'staff', api: registerStaffApi, console: consoleRouter },
  { name: 'webhooks', open: webhookRouter },
  { name: 'contacts', api: registerContactsApi, console: contactsConsole },
  { name: 'segments', api: registerSegmentsApi, console: segmentsConsole },
  { name: 'imports', api: registerImportsApi, console: importsConsole },
  { name: 'exports', api: registerExportsApi, console: exportsConsole },
  { name: 'surveys', api: registerSurveysApi, console: surveysConsole },
  { name: 'complaints', api: registerComplaintsApi, console: complaintsConsole, open: () => complaintsPublic() },
  { name: 'broadcasts', api: registerBroadcastsApi, console: broadcastsConsole },
  { name: 'inbox', api: registerInboxApi, console: inboxConsole },
  { name: 'cash', api: registerCashApi, console: cashConsole, open: cashUploads },
  { name: 'reports', api: registerReportsApi, console: reportsConsole },
  { name: 'simulator', api: registerSimulatorApi, console: simulatorConsole },
];
