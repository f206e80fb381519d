/**
 * A key-message version rendered for one contact: the text of its variant in the contact's language
 * (with the broadcast's standing footer), as WhatsApp free-form text (with the media, if any), as an
 * approved WhatsApp template (outside the 24-hour window), or as SMS text. Pure: the caller gives the
 * contact's data and whether their WhatsApp window is open.
 */
import type { OutboundContent } from '../messaging/types.js';
import type { ChannelPolicy } from './audience.js';
import { variantLanguage } from './audience.js';
import type { MessageVersion, Variant } from './messages.js';
import { compiled, type TemplateData } from './templates.js';

export interface ContactData {
  name: string | null;
  language: string | null;
  fields: Record<string, string | number>;
}

/** The variant for a language: exact, then its base (es-PE → es), then the fallback, then the first. */
export function pickVariant(v: Pick<MessageVersion, 'variants'>, language: string | null, fallback?: string | null): { language: string; variant: Variant } {
  const langs = Object.keys(v.variants);
  const lang = variantLanguage(language, langs) ?? variantLanguage(fallback, langs) ?? langs[0];
  return { language: lang, variant: v.variants[lang] };
}

/** The footer in a language: exact, base, else the first one written. */
export function footerFor(footer: Record<string, string> | null | undefined, language: string): string | null {
  if (!footer) return null;
  const langs = Object.keys(footer);
  if (langs.length === 0) return null;
  const l = variantLanguage(language, langs) ?? langs[0];
  return footer[l]?.trim() || null;
}

function data(c: ContactData, language: string, programme: string): TemplateData {
  return { name: c.name ?? '', language: c.language ?? language, programme, fields: c.fields ?? {} };
}

export interface RenderInput {
  version: Pick<MessageVersion, 'id' | 'variants' | 'media'>;
  /** The language chosen at fan-out (the outbox row's). */
  language: string | null;
  contact: ContactData;
  programme: string;
  footer?: Record<string, string> | null;
  policy: ChannelPolicy;
  /** Whether the contact's WhatsApp 24-hour window is open now. */
  windowOpen: boolean;
}

/** The message text in the contact's language, with the footer: what SMS sends and WhatsApp shows. */
export function renderText(i: Pick<RenderInput, 'version' | 'language' | 'contact' | 'programme' | 'footer'>): { language: string; text: string } {
  const { language, variant } = pickVariant(i.version, i.language, i.contact.language);
  const body = compiled(`v${i.version.id}:${language}:text`, variant.text)(data(i.contact, language, i.programme)).trim();
  const footer = footerFor(i.footer, language);
  return { language, text: footer ? `${body}\n\n${footer}` : body };
}

/**
 * The content the dispatcher sends. SMS only: the text. Otherwise: inside the WhatsApp window, the
 * text (with the media); outside it, the approved WhatsApp template when the variant maps one (its
 * `text` is what SMS sends if WhatsApp is not possible); else the text, which the dispatcher sends
 * by SMS (WhatsApp then SMS) or skips as window_closed (WhatsApp only).
 */
export function renderContent(i: RenderInput): OutboundContent {
  const { language, text } = renderText(i);
  if (i.policy === 'sms_only') return { type: 'text', text };
  const variant = i.version.variants[language];
  if (!i.windowOpen && variant?.template) {
    const t = variant.template;
    const d = data(i.contact, language, i.programme);
    const params = t.params.map((p, n) => compiled(`v${i.version.id}:${language}:p${n}`, p)(d).replace(/\s+/g, ' ').trim() || '-');
    return { type: 'template', name: t.name, language: t.language, params, text };
  }
  if (i.version.media) {
    const m = i.version.media;
    return { type: 'text', text, media: { kind: m.kind, ...(m.url ? { url: m.url } : {}), ...(m.id ? { id: m.id } : {}), ...(m.filename ? { filename: m.filename } : {}) } };
  }
  return { type: 'text', text };
}
