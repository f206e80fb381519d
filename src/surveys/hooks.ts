/**
 * How other domains learn that a session finished: complaint intake files the complaint when its
 * survey completes, PDM computes its indicators, and so on.
 *
 *   onComplete('complaint-intake', async (s, services) => { … s.values.category … s.context.complaintId … });
 *   onFinish('cash-pdm', async (s) => { if (s.status === 'expired') … });
 *
 * Handlers run after the session's change is committed, one after the other; an error in one is
 * logged (without personal data) and does not undo the session or stop the others.
 */
import type { RouterServices } from '../messaging/types.js';
import type { AnswerValue } from './engine.js';

export interface FinishedSession {
  sessionId: number;
  runId: number | null;
  surveyKey: string;
  version: string;
  contactId: number;
  status: 'completed' | 'ended' | 'expired' | 'cancelled';
  /** declined | attempts | expired | staff | null (completed) */
  reason: string | null;
  /** Answers and calculations by name (select_one: the choice name; select_multiple: the names). */
  values: Record<string, AnswerValue>;
  /** What the session was started with (startSession's `context`). */
  context: Record<string, unknown> | null;
  language: string;
}

export type SessionHandler = (session: FinishedSession, services: RouterServices) => Promise<void>;

const completeHandlers = new Map<string, SessionHandler[]>();
const finishHandlers = new Map<string, SessionHandler[]>();

/** Called when a session of this survey completes (every question asked or skipped). */
export function onComplete(surveyKey: string, handler: SessionHandler): () => void {
  return add(completeHandlers, surveyKey, handler);
}

/** Called when a session of this survey finishes in any way: completed, ended, expired, cancelled. */
export function onFinish(surveyKey: string, handler: SessionHandler): () => void {
  return add(finishHandlers, surveyKey, handler);
}

function add(map: Map<string, SessionHandler[]>, key: string, handler: SessionHandler): () => void {
  const list = map.get(key) ?? [];
  list.push(handler);
  map.set(key, list);
  return () => {
    const l = map.get(key);
    if (l) map.set(key, l.filter((h) => h !== handler));
  };
}

export async function runFinishHooks(session: FinishedSession, services: RouterServices): Promise<void> {
  const handlers = [...(session.status === 'completed' ? completeHandlers.get(session.surveyKey) ?? [] : []), ...(finishHandlers.get(session.surveyKey) ?? [])];
  for (const h of handlers) {
    try {
      await h(session, services);
    } catch (err) {
      services.log.error({ surveyKey: session.surveyKey, sessionId: session.sessionId, error: (err as Error).name, message: (err as Error).message }, 'survey hook failed');
    }
  }
}
