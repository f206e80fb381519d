/**
 * The inbound router: ARCHITECTURE.md's order, first match wins.
 *   1. global keywords (STOP, START, HELP, language) — win over everything, even an open survey
 *   2. pending confirmations (double opt-in, consent questions)
 *   3. list join keywords
 *   4. an open survey session or complaint intake
 *   5. FAQ / key-message auto-reply
 *   6. otherwise the staff inbox, with an acknowledgement
 * Each domain contributes its steps in src/messaging/steps.ts.
 */
import type { InboundContext, RouterStep } from './types.js';

export const STAGES = ['global', 'confirmation', 'join', 'session', 'faq', 'inbox'] as const;
export type Stage = (typeof STAGES)[number];

export interface NamedStep {
  stage: Stage;
  name: string;
  step: RouterStep;
}

/** Runs the steps in stage order; returns the route that handled the message. */
export async function routeMessage(steps: readonly NamedStep[], ctx: InboundContext): Promise<string> {
  const ordered = [...steps].sort((a, b) => STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage));
  for (const s of ordered) {
    const handled = await s.step(ctx);
    if (handled) return handled;
  }
  return 'unrouted';
}
