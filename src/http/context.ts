/** What every request handler can reach: configuration, database, logger, and the caller. */
import type { ParameterizedContext } from 'koa';
import type { Config } from '../config.js';
import type { Database } from '../db/orm.js';
import type { Logger } from '../log.js';
import type { Actor } from '../staff/audit.js';
import type { Permission } from '../staff/roles.js';

export interface Services {
  config: Config;
  db: Database;
  log: Logger;
}

export interface AppState {
  requestId: string;
  actor?: Actor;
  permissions?: readonly Permission[];
  /** Set for console requests signed in by cookie. */
  session?: { cookie: string; csrfToken: string; userId: number; locale: string; name: string };
  /** Set by the console to render errors as pages. */
  html?: boolean;
}

export type Ctx = ParameterizedContext<AppState> & { services: Services; params: Record<string, string> };
