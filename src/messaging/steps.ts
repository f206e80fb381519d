/**
 * The router's steps, from every domain, in ARCHITECTURE.md's order (stages sort them; within a
 * stage, this order). Add a domain's steps here.
 */
import type { NamedStep } from './router.js';
import { inboxStep } from './inbox.js';
import { contactsConfirmationStep, contactsGlobalStep, contactsJoinStep } from '../contacts/steps.js';
import { faqStep } from '../broadcasts/faq.js';
import { complaintsIntakeStep, complaintsKeywordStep } from '../complaints/intake.js';
import { pssHandoffStep } from '../complaints/pss.js';
import { surveyButtonStep, sessionStep as surveySessionStep } from '../surveys/sessions.js';
import '../cash/hooks.js'; // what PDM answers lead to (indicators, complaints): registered wherever sessions finish

export const ROUTER_STEPS: NamedStep[] = [
  { stage: 'global', name: 'surveys.buttons', step: surveyButtonStep }, // only taps on a survey's own buttons and its language question; typed STOP etc. pass
  { stage: 'global', name: 'contacts.keywords', step: contactsGlobalStep },
  { stage: 'confirmation', name: 'contacts.confirmation', step: contactsConfirmationStep },
  { stage: 'join', name: 'complaints.keywords', step: complaintsKeywordStep },
  { stage: 'join', name: 'contacts.join', step: contactsJoinStep },
  { stage: 'session', name: 'pss.handoff', step: pssHandoffStep },
  { stage: 'session', name: 'complaints.intake', step: complaintsIntakeStep },
  { stage: 'session', name: 'surveys.session', step: surveySessionStep },
  { stage: 'faq', name: 'broadcasts.faq', step: faqStep },
  { stage: 'inbox', name: 'inbox', step: inboxStep },
];
