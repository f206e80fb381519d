/**
 * The words Ayni puts around a survey's own wording: "Reply 1-5", "SKIP to skip", error
 * messages, button labels. Kept short and, where the language allows, within the GSM-7 alphabet
 * (Spanish without á í ó ú; French é è à are GSM-7), so that the chrome never forces an SMS into
 * UCS-2 on its own. The survey's wording itself is never changed.
 */

export type ChromeKey =
  | 'reply_range'
  | 'reply_multi'
  | 'reply_multi_short'
  | 'skip_hint'
  | 'date_hint'
  | 'err_not_understood'
  | 'err_choose_number'
  | 'err_one_only'
  | 'err_integer'
  | 'err_decimal'
  | 'err_date'
  | 'err_text'
  | 'err_required'
  | 'err_invalid'
  | 'err_stale'
  | 'prefix_reminder'
  | 'prefix_resume'
  | 'list_button'
  | 'skip_button'
  | 'option'
  | 'language_prompt'
  | 'yes'
  | 'no'
  | 'consent_yes'
  | 'consent_no';

type Table = Record<ChromeKey, string>;

const en: Table = {
  reply_range: 'Reply {from}-{to}',
  reply_multi: 'You can choose several, e.g. 1 3',
  reply_multi_short: 'e.g. 1 3',
  skip_hint: 'SKIP to skip',
  date_hint: 'Date as DD/MM/YYYY',
  err_not_understood: 'Sorry, I did not understand.',
  err_choose_number: 'Please reply with a number from {from} to {to}.',
  err_one_only: 'Please choose only one.',
  err_integer: 'Please reply with a whole number.',
  err_decimal: 'Please reply with a number.',
  err_date: 'Please reply with a date, e.g. 22/11/2026.',
  err_text: 'Please reply with text.',
  err_required: 'This question needs an answer.',
  err_invalid: 'That answer is not accepted.',
  err_stale: 'That answer was for an earlier question.',
  prefix_reminder: 'Reminder:',
  prefix_resume: "Let's continue where we left off:",
  list_button: 'Choose',
  skip_button: 'Skip',
  option: 'Option {n}',
  language_prompt: 'Choose your language',
  yes: 'Yes',
  no: 'No',
  consent_yes: 'Yes, start',
  consent_no: 'No, thanks',
};

const es: Table = {
  reply_range: 'Responda {from}-{to}',
  reply_multi: 'Puede elegir varios, p.ej. 1 3',
  reply_multi_short: 'p.ej. 1 3',
  skip_hint: 'SALTAR para omitir',
  date_hint: 'Fecha como DD/MM/AAAA',
  err_not_understood: 'No entendimos su respuesta.',
  err_choose_number: 'Responda con una cifra del {from} al {to}.',
  err_one_only: 'Elija solo una.',
  err_integer: 'Responda solo con cifras, sin decimales.',
  err_decimal: 'Responda con una cifra.',
  err_date: 'Responda con una fecha, p.ej. 22/11/2026.',
  err_text: 'Responda con un texto.',
  err_required: 'Esta pregunta necesita una respuesta.',
  err_invalid: 'Esa respuesta no se acepta.',
  err_stale: 'Esa respuesta era para una pregunta anterior.',
  prefix_reminder: 'Recordatorio:',
  prefix_resume: 'Sigamos donde nos quedamos:',
  list_button: 'Elegir',
  skip_button: 'Saltar',
  option: 'Opción {n}',
  language_prompt: 'Elija su idioma',
  yes: 'Sí',
  no: 'No',
  consent_yes: 'Empezar',
  consent_no: 'No, gracias',
};

const pt: Table = {
  reply_range: 'Responda {from}-{to}',
  reply_multi: 'Pode escolher mais de um, ex. 1 3',
  reply_multi_short: 'ex. 1 3',
  skip_hint: 'PULAR para pular',
  date_hint: 'Data como DD/MM/AAAA',
  err_not_understood: 'Desculpe, não entendi.',
  err_choose_number: 'Responda com um número de {from} a {to}.',
  err_one_only: 'Escolha apenas uma.',
  err_integer: 'Responda com um número inteiro.',
  err_decimal: 'Responda com um número.',
  err_date: 'Responda com uma data, ex. 22/11/2026.',
  err_text: 'Responda com um texto.',
  err_required: 'Esta pergunta precisa de uma resposta.',
  err_invalid: 'Essa resposta não é aceita.',
  err_stale: 'Essa resposta era para uma pergunta anterior.',
  prefix_reminder: 'Lembrete:',
  prefix_resume: 'Vamos continuar de onde paramos:',
  list_button: 'Escolher',
  skip_button: 'Pular',
  option: 'Opção {n}',
  language_prompt: 'Escolha seu idioma',
  yes: 'Sim',
  no: 'Não',
  consent_yes: 'Iniciar',
  consent_no: 'Não, obrigado',
};

const fr: Table = {
  reply_range: 'Répondez {from}-{to}',
  reply_multi: 'Plusieurs choix possibles, ex. 1 3',
  reply_multi_short: 'ex. 1 3',
  skip_hint: 'PASSER pour passer',
  date_hint: 'Date au format JJ/MM/AAAA',
  err_not_understood: "Désolé, je n'ai pas compris.",
  err_choose_number: 'Répondez par un chiffre de {from} à {to}.',
  err_one_only: 'Choisissez une seule réponse.',
  err_integer: 'Répondez par un nombre entier.',
  err_decimal: 'Répondez par un nombre.',
  err_date: 'Répondez par une date, ex. 22/11/2026.',
  err_text: 'Répondez par un texte.',
  err_required: 'Cette question demande une réponse.',
  err_invalid: "Cette réponse n'est pas acceptée.",
  err_stale: 'Cette réponse était pour une question précédente.',
  prefix_reminder: 'Rappel :',
  prefix_resume: 'Reprenons là où nous en étions :',
  list_button: 'Choisir',
  skip_button: 'Passer',
  option: 'Option {n}',
  language_prompt: 'Choisissez votre langue',
  yes: 'Oui',
  no: 'Non',
  consent_yes: 'Commencer',
  consent_no: 'Non, merci',
};

const TABLES: Record<string, Table> = { en, es, pt, fr };

/** A chrome string in `lang` (English when the language has none), with {placeholders} filled. */
export function chrome(lang: string, key: ChromeKey, vars: Record<string, string | number> = {}): string {
  const table = TABLES[lang] ?? TABLES[lang.split('-')[0]] ?? en;
  let s = table[key];
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

/** Languages by their own name, for the language question. */
export const NATIVE_NAMES: Record<string, string> = {
  es: 'Español', en: 'English', pt: 'Português', fr: 'Français', qu: 'Runasimi', ay: 'Aymar aru', ar: 'العربية',
  ht: 'Kreyòl ayisyen', sw: 'Kiswahili', uk: 'Українська', ru: 'Русский', zh: '中文', fa: 'فارسی', ps: 'پښتو',
  so: 'Soomaali', am: 'አማርኛ', ti: 'ትግርኛ', tr: 'Türkçe', de: 'Deutsch', it: 'Italiano', gn: "Avañe'ẽ", guc: 'Wayuunaiki',
};

export function nativeName(lang: string): string {
  return NATIVE_NAMES[lang] ?? NATIVE_NAMES[lang.split('-')[0]] ?? lang;
}

/** Words that skip an optional question, in any of the languages (compared after normalising). */
export const SKIP_WORDS = new Set(['skip', 'saltar', 'pular', 'passer', 'omitir']);
/** Yes and no for the opening question, besides the numbers and the button. */
export const YES_ANSWERS = new Set(['yes', 'y', 'si', 'sim', 'oui', 'ok', 'dale', 'claro', 'acepto', 'i agree', 'de acuerdo', 'bueno']);
export const NO_ANSWERS = new Set(['no', 'n', 'nao', 'non', 'no gracias', 'no thanks', 'nope']);
