/** Errors that carry an HTTP status and become the JSON envelope {"error":{"code","message","details"}}. */
import { ZodError } from 'zod';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what = 'Not found') => new HttpError(404, 'not_found', what);
export const forbidden = () => new HttpError(403, 'forbidden', 'Your role does not allow this');
export const unauthorized = () => new HttpError(401, 'unauthorized', 'Sign in or send a valid API token');

/** Turns zod issues into {"field.path": "message"}; `prefix` names where the value came from (body, query, params). */
export function zodDetails(error: ZodError, prefix?: string): Record<string, string> {
  const details: Record<string, string> = {};
  for (const issue of error.issues) {
    const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(root)';
    details[path] ??= issue.message;
  }
  return details;
}

export function validationError(error: ZodError, prefix?: string): HttpError {
  return new HttpError(400, 'validation_failed', 'The request is not valid', zodDetails(error, prefix));
}

export interface ErrorEnvelope {
  error: { code: string; message: string; details?: Record<string, unknown>; requestId?: string };
}

/** Maps anything thrown to a status and envelope. Unknown errors become a 500 without internals. */
export function toEnvelope(err: unknown, requestId?: string): { status: number; body: ErrorEnvelope; expected: boolean } {
  if (err instanceof HttpError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message, details: err.details, requestId } }, expected: true };
  }
  if (err instanceof ZodError) {
    const e = validationError(err);
    return { status: 400, body: { error: { code: e.code, message: e.message, details: e.details, requestId } }, expected: true };
  }
  const status = (err as { status?: number; expose?: boolean })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'bad_request';
    const message = status === 413 ? 'The request body is too large' : (err as Error).message || 'Bad request';
    return { status, body: { error: { code, message, requestId } }, expected: true };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'Something went wrong; the request id helps us find it', requestId } }, expected: false };
}
