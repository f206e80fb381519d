/**
 * The words people text to the line: STOP and its translations, START, HELP, YES/NO, JOIN and its
 * translations, and language names. Matching is case- and accent-insensitive and the keyword must
 * be alone in the message ("stop" and "Stop!" match; "please stop sending" does not).
 */

/** "  Stop! " → "STOP"; "Sí" → "SI"; "ARRÊT" → "ARRET"; "join  noticias" → "JOIN NOTICIAS". */
export function normaliseKeyword(text: string | null | undefined): string {
  if (!text) return '';
  return text
    .normalize('NFD')
    .replace(/\p{M}+/gu, '') // accents
    .toUpperCase()
    .replace(/[-_]+/g, '') // OPT-OUT → OPTOUT
    .replace(/[^\p{L}\p{N}\s]+/gu, ' ') // punctuation and emoji become spaces
    .replace(/\s+/g, ' ')
    .trim();
}

type Lang = 'es' | 'en' | 'pt' | 'fr';

/** Ends every subscription and withdraws consent. The language is a hint for the reply, not a choice. */
export const STOP_WORDS: Record<string, Lang | null> = {
  STOP: null, STOPALL: 'en', UNSUBSCRIBE: 'en', CANCEL: 'en', END: 'en', QUIT: 'en', OPTOUT: 'en', REVOKE: 'en',
  BAJA: 'es', PARAR: null, SAIR: 'pt', ARRET: 'fr',
};
/** Brings a stopped contact back through a fresh consent prompt. */
export const START_WORDS: Record<string, Lang | null> = { START: 'en', UNSTOP: 'en', ALTA: 'es' };
export const HELP_WORDS: Record<string, Lang | null> = { HELP: 'en', INFO: null, AYUDA: 'es', AJUDA: 'pt', AIDE: 'fr' };
export const YES_WORDS = new Set(['YES', 'Y', 'SI', 'SIM', 'OUI']);
export const NO_WORDS = new Set(['NO', 'N', 'NAO', 'NON']);
/** JOIN verbs: their language becomes the contact's language. */
export const JOIN_WORDS: Record<string, Lang> = { JOIN: 'en', UNIRSE: 'es', UNIRME: 'es', ENTRAR: 'pt', REJOINDRE: 'fr' };

/** Language names people write to switch, and the words that introduce a code ("LANG es"). */
export const LANGUAGE_NAMES: Record<string, Lang> = {
  ENGLISH: 'en', INGLES: 'en', ANGLAIS: 'en',
  ESPANOL: 'es', CASTELLANO: 'es', SPANISH: 'es', ESPAGNOL: 'es', ESPANHOL: 'es',
  PORTUGUES: 'pt', PORTUGUESE: 'pt', PORTUGAIS: 'pt',
  FRANCAIS: 'fr', FRENCH: 'fr', FRANCES: 'fr',
};
export const LANGUAGE_VERBS = new Set(['LANG', 'LANGUAGE', 'IDIOMA', 'LANGUE', 'LINGUA']);

/** Words no list may use as its own keyword, because the router gives them another meaning first. */
export function reservedWords(): Set<string> {
  return new Set([
    ...Object.keys(STOP_WORDS), ...Object.keys(START_WORDS), ...Object.keys(HELP_WORDS), ...YES_WORDS, ...NO_WORDS,
    ...Object.keys(JOIN_WORDS), ...Object.keys(LANGUAGE_NAMES), ...LANGUAGE_VERBS,
  ]);
}

export type GlobalCommand =
  | { kind: 'stop'; lang: Lang | null }
  | { kind: 'start'; lang: Lang | null }
  | { kind: 'help'; lang: Lang | null }
  | { kind: 'language'; language: string };

/** What a message means at the global stage, or null. `LANG xx` takes any code; the caller checks it is offered. */
export function parseGlobal(text: string | null | undefined): GlobalCommand | null {
  const n = normaliseKeyword(text);
  if (!n) return null;
  if (n in STOP_WORDS) return { kind: 'stop', lang: STOP_WORDS[n] };
  if (n in START_WORDS) return { kind: 'start', lang: START_WORDS[n] };
  if (n in HELP_WORDS) return { kind: 'help', lang: HELP_WORDS[n] };
  if (n in LANGUAGE_NAMES) return { kind: 'language', language: LANGUAGE_NAMES[n] };
  const words = n.split(' ');
  if (words.length === 2 && LANGUAGE_VERBS.has(words[0])) {
    const second = words[1];
    if (second in LANGUAGE_NAMES) return { kind: 'language', language: LANGUAGE_NAMES[second] };
    if (/^[A-Z]{2,3}$/.test(second)) return { kind: 'language', language: second.toLowerCase() };
  }
  return null;
}

export function parseYesNo(text: string | null | undefined): 'yes' | 'no' | null {
  const n = normaliseKeyword(text);
  if (YES_WORDS.has(n)) return 'yes';
  if (NO_WORDS.has(n)) return 'no';
  return null;
}

/** "JOIN", "JOIN NEWS", "unirse noticias" → the verb's language and the keyword (empty for the default list). More than one word after the verb is a sentence: null. */
export function parseJoin(text: string | null | undefined): { lang: Lang; keyword: string } | null {
  const n = normaliseKeyword(text);
  if (!n) return null;
  const [verb, ...rest] = n.split(' ');
  if (!(verb in JOIN_WORDS)) return null;
  if (rest.length > 1) return null; // "join us tomorrow", "entrar en contacto": a sentence, not a command
  return { lang: JOIN_WORDS[verb], keyword: rest.join(' ') };
}
