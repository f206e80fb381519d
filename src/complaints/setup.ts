/** Registers the complaints settings for the whole process (boot.ts calls it with the configuration). */
import type { Config } from '../config.js';
import { configureComplaintsKey } from './crypto.js';
import { configureSla, slaFromConfig } from './model.js';

export function configureComplaints(config: Config): void {
  configureComplaintsKey(config); // the key that seals sensitive narratives and mental-health notes
  configureSla(slaFromConfig(config)); // service levels for cases opened by other domains (PDM)
}
