/**
 * What the cash domain does when a PDM session finishes (completed, declined, expired): its answers
 * become the recipient's indicators and, where the person asked for it, complaints (pdm.ts
 * `recordPdmAnswers`, registered when pdm.ts loads). Imported for its effect by
 * src/messaging/steps.ts, so that the hook is registered in every process where sessions finish:
 * the server (answers) and the job workers (survey-timers: expiry).
 */
import './pdm.js';
