/**
 * The router's steps, from every domain, in ARCHITECTURE.md's order (stages sort them; within a
 * stage, this order). Add a domain's steps here.
 */
import type { NamedStep } from './router.js';
import { inboxStep } from './inbox.js';
import { contactsConfirmationStep, contactsGlobalStep, contactsJoinStep } from '../contacts/steps.js';

export const ROUTER_STEPS: NamedStep[] = [
  { stage: 'global', name: 'contacts.keywords', step: contactsGlobalStep },
  { stage: 'confirmation', name: 'contacts.confirmation', step: contactsConfirmationStep },
  { stage: 'join', name: 'contacts.join', step: contactsJoinStep },
  { stage: 'inbox', name: 'inbox', step: inboxStep },
];
