/** Errors in a segment query, with the place they were found and, for misspellings, a suggestion. */
import { editDistance } from '../../util/text.js';

export interface Position {
  /** 0-based character offset in the query text. */
  offset: number;
  /** 1-based line and column. */
  line: number;
  column: number;
  /** How many characters the problem spans (at least 1). */
  length: number;
}

export type SegmentErrorCode = 'syntax' | 'unknown_field' | 'unknown_value' | 'type' | 'operator';

export class SegmentError extends Error {
  constructor(
    readonly code: SegmentErrorCode,
    message: string,
    readonly position: Position,
    readonly suggestion?: string,
  ) {
    super(message);
    this.name = 'SegmentError';
  }

  /** "line 1, column 14: unknown field "regoin"; did you mean "region"?" */
  get display(): string {
    return `line ${this.position.line}, column ${this.position.column}: ${this.message}`;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.position, suggestion: this.suggestion ?? null };
  }
}

/** Line and column of an offset in text. */
export function positionAt(text: string, offset: number, length = 1): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1, length: Math.max(1, length) };
}

export { editDistance };

/** The candidate closest to `word`, if it is close enough to be a likely misspelling. */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === undefined) return undefined;
  const allowed = Math.max(2, Math.floor(Math.max(word.length, best.length) / 3));
  return bestDistance <= allowed ? best : undefined;
}
