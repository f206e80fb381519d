/** WhatsApp media on a text message (the small extension of OutboundContent the key-message bank uses). */
import { describe, expect, it } from 'vitest';
import { validateWhatsAppContent, whatsappPayload } from '../../src/channels/whatsapp.js';
import { renderSms } from '../../src/channels/sms.js';
import type { OutboundContent } from '../../src/messaging/types.js';

const to = { to: '+51987654321', toKind: 'phone' as const };

describe('media messages', () => {
  it('sends an image or document with the text as caption, a voice note alone, by link or media id', () => {
    const image: OutboundContent = { type: 'text', text: 'Mapa', media: { kind: 'image', url: 'https://example.org/m.png' } };
    expect(whatsappPayload({ ...to, content: image })).toMatchObject({ type: 'image', image: { link: 'https://example.org/m.png', caption: 'Mapa' } });
    const doc: OutboundContent = { type: 'text', text: 'Guía', media: { kind: 'document', id: '1234567890', filename: 'guia.pdf' } };
    expect(whatsappPayload({ ...to, content: doc })).toMatchObject({ type: 'document', document: { id: '1234567890', caption: 'Guía', filename: 'guia.pdf' } });
    const audio: OutboundContent = { type: 'text', text: 'La vacuna es gratuita.', media: { kind: 'audio', url: 'https://example.org/v.ogg' } };
    const a = whatsappPayload({ ...to, content: audio });
    expect(a).toMatchObject({ type: 'audio', audio: { link: 'https://example.org/v.ogg' } });
    expect((a.audio as Record<string, unknown>).caption).toBeUndefined();
    // SMS always gets the text.
    expect(renderSms(audio, 'es')).toBe('La vacuna es gratuita.');
  });

  it('refuses media WhatsApp would refuse, with the reason', () => {
    expect(validateWhatsAppContent({ type: 'text', text: 'x', media: { kind: 'image', url: 'http://example.org/m.png' } })).toEqual(['media needs a https:// URL or a WhatsApp media id']);
    expect(validateWhatsAppContent({ type: 'text', text: 'x'.repeat(1025), media: { kind: 'image', url: 'https://example.org/m.png' } })[0]).toContain('caption has 1025 characters');
    expect(validateWhatsAppContent({ type: 'text', text: 'x'.repeat(2000), media: { kind: 'audio', url: 'https://example.org/v.ogg' } })).toEqual([]);
    expect(validateWhatsAppContent({ type: 'text', text: 'Hola' })).toEqual([]);
  });
});
