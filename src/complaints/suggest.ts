/**
 * Keyword hints. They only ever suggest: a complaint is sensitive because the person chose a
 * sensitive category (or staff marked it so), and a triage level is set by a trained person. A hint
 * puts a flag in front of a human; it never classifies, hides or sends anything by itself.
 *
 * Matching is on word beginnings, case- and accent-insensitive, in Spanish, English, Portuguese
 * and French.
 */

const norm = (s: string) =>
  ` ${s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()} `;

/** Stems (word beginnings) and phrases, already normalised. */
const SENSITIVE = [
  // sexual exploitation and abuse
  'abus', 'acos', 'sexual', 'violac', 'viola ', 'violo ', 'me toco', 'tocaron', 'manose', 'explotac', 'prostitu', 'favores sexual',
  'harass', 'rape', 'raped', 'touched me', 'exploit', 'sexual favour', 'sexual favor', 'assedi', 'estupr', 'harcel', 'viol ',
  // fraud, asked to pay
  'cobr', 'coima', 'soborn', 'fraud', 'estaf', 'pidieron dinero', 'pidio dinero', 'pagar para', 'pague para', 'me pidieron pagar',
  'hay que pagar', 'tuve que pagar', 'tenia que pagar', 'hicieron pagar', 'pagar por', 'pay to', 'have to pay', 'had to give',
  'bribe', 'scam', 'asked me to pay', 'asked for money', 'had to pay', 'charged me', 'propina', 'arnaque', 'pot de vin', 'golpe do',
  // staff misconduct
  'maltrat', 'insult', 'humill', 'discrimin', 'mistreat', 'rude', 'grito', 'gritaron',
  // safety threat
  'amenaz', 'threat', 'golpe', 'pegaron', 'me pego', 'matar', 'kill', 'peligro', 'danger', 'unsafe', 'menace', 'amea',
];

const PSS_RED = [
  'suicid', 'matarme', 'quitarme la vida', 'no quiero vivir', 'quiero morir', 'me quiero morir', 'acabar con todo', 'hacerme dano',
  'kill myself', 'end my life', 'want to die', 'hurt myself', 'self harm', 'me matar', 'quero morrer', 'me tuer', 'envie de mourir',
];
const PSS_YELLOW = [
  'ansiedad', 'ansios', 'depres', 'angusti', 'desesper', 'no puedo dormir', 'no duermo', 'pesadilla', 'panico', 'llor', 'triste',
  'solo y', 'sola y', 'sin esperanza', 'anxiety', 'anxious', 'depress', 'panic', 'hopeless', 'cant sleep', 'can t sleep', 'nightmare',
  'crying', 'ansiedade', 'tristeza', 'angoisse',
];

function matches(text: string, terms: readonly string[]): boolean {
  const t = norm(text);
  return terms.some((term) => t.includes(` ${term}`));
}

/** True when the words hint at a sensitive matter (SEA, fraud or being asked to pay, misconduct, a threat). */
export function suggestsSensitive(text: string | null | undefined): boolean {
  return Boolean(text) && matches(text!, SENSITIVE);
}

/** The psychosocial level the words hint at, or null. A trained person decides. */
export function suggestPssLevel(texts: readonly (string | null | undefined)[]): 'red' | 'yellow' | null {
  const all = texts.filter(Boolean).join(' \n ');
  if (!all) return null;
  if (matches(all, PSS_RED)) return 'red';
  if (matches(all, PSS_YELLOW)) return 'yellow';
  return null;
}
