/**
 * The router's steps, from every domain, in ARCHITECTURE.md's order (stages sort them; within a
 * stage, this order). Add a domain's steps here.
 */
import type { NamedStep } from './router.js';
import { inboxStep } from './inbox.js';

export const ROUTER_STEPS: NamedStep[] = [
  { stage: 'inbox', name: 'inbox', step: inboxStep },
];
