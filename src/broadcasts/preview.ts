/**
 * What a broadcast will do, before it is sent: who (by language and channel, with the fallbacks
 * counted), who not (and why), what it costs, how long it takes, and what it looks like.
 *
 * The counts come from the very recipients query the fan-out inserts from (audience.ts), grouped in
 * SQL: sent at the same moment, the fan-out inserts exactly `recipients` rows with exactly these
 * languages. The channel split is a forecast of the dispatcher's choice at send time (WhatsApp inside
 * the 24-hour window, the approved template outside it, SMS otherwise), from the addresses as they are
 * now.
 *
 * Cost: SMS segments × SMS_PRICE_PER_SEGMENT (segments measured on messages rendered for up to 200
 * recipients, averaged per language) + WhatsApp template messages × WHATSAPP_PRICE_PER_MESSAGE
 * (free-form messages inside the 24-hour window are free under Meta's per-message pricing).
 *
 * Time: WhatsApp messages at WHATSAPP_RATE_PER_SECOND and SMS segments at the SMS provider's rate, in
 * parallel; groups held by quiet hours start when their quiet hours end; template messages beyond the
 * WhatsApp messaging tier (WHATSAPP_MESSAGING_TIER unique people per 24 hours) wait a day per tier.
 */
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDateOrNull, toInt } from '../db/values.js';
import { measureSms, renderSms } from '../channels/sms.js';
import { audienceQuery, type AudienceSpec } from '../contacts/segments/index.js';
import { listFields } from '../contacts/fields.js';
import { column, mediaFor, type Recipients } from './audience.js';
import { getBroadcast, recipientsOf, type Broadcast } from './broadcasts.js';
import { renderContent, renderText, type ContactData } from './content.js';
import { getVersion, type MessageVersion } from './messages.js';
import { loadContactData } from './render.js';
import { placeholderData } from './templates.js';

const WINDOW_MS = 24 * 3_600_000;
const SAMPLE = 200;

export interface PreviewLanguage {
  language: string;
  recipients: number;
  /** Where the language came from. */
  fromContact: number;
  fromList: number;
  fromProgramme: number;
  whatsapp: number;
  whatsappTemplate: number;
  sms: number;
  unreachable: number;
  /** Mean SMS segments of one message in this language (rendered for sampled recipients). */
  smsSegmentsEach: number;
}

export interface PreviewSample {
  language: string;
  whatsapp: { type: string; text: string; media: { kind: string; url?: string; id?: string } | null };
  whatsappTemplate: { name: string; language: string; params: string[] } | null;
  sms: { text: string; segments: number; encoding: string; characters: number };
}

export interface Preview {
  computedAt: string;
  startAt: string;
  broadcastId: number;
  messageVersionId: number;
  version: number;
  /** Contacts in the lists / segment (erased ones never). */
  audience: number;
  excluded: { notActive: number; noConsent: number; noAddress: number; recentlyMessaged: number };
  recipients: number;
  byLanguage: PreviewLanguage[];
  /** Recipients who get another language than their own (list default or programme default). */
  languageFallback: number;
  byChannel: { whatsapp: number; whatsappTemplate: number; sms: number; unreachable: number };
  /** Recipients with a WhatsApp address who will get SMS (window closed, no template). */
  channelFallback: number;
  quiet: { held: number; until: { at: string; recipients: number }[] };
  cost: { currency: string; smsMessages: number; smsSegments: number; sms: number; whatsappTemplates: number; whatsapp: number; total: number };
  estimate: { whatsappSeconds: number; smsSeconds: number; tierDays: number; finishAt: string };
  samples: PreviewSample[];
}

interface Group {
  language: string;
  source: string;
  wa: boolean;
  win: boolean;
  sms: boolean;
  notBefore: Date | null;
  n: number;
}

async function grouped(knex: Knex, r: Recipients, now: Date): Promise<Group[]> {
  const since = new Date(now.getTime() - WINDOW_MS);
  const has = (channel: string, extra = '') =>
    knex.raw(`EXISTS (SELECT 1 FROM contact_addresses a WHERE a.contact_id = c.id AND a.channel = ? AND a.opted_out = ?${extra})`, extra ? [channel, false, since] : [channel, false]);
  const inner = r.query
    .clone()
    .select(
      column(knex, r.language, 'language'),
      column(knex, r.languageSource, 'source'),
      knex.raw('? AS ??', [has('whatsapp'), 'wa']),
      knex.raw('? AS ??', [has('whatsapp', ' AND a.last_inbound_at >= ?'), 'win']),
      knex.raw('? AS ??', [has('sms'), 'sms']),
      column(knex, r.notBefore, 'not_before'),
    )
    .as('r');
  const rows = await knex.from(inner).select('language', 'source', 'wa', 'win', 'sms', 'not_before').count({ n: '*' }).groupBy('language', 'source', 'wa', 'win', 'sms', 'not_before');
  return rows.map((x: Record<string, unknown>) => ({
    language: String(x.language),
    source: String(x.source),
    wa: toBool(x.wa),
    win: toBool(x.win),
    sms: toBool(x.sms),
    notBefore: toDateOrNull(x.not_before),
    n: toInt(x.n),
  }));
}

/** The dispatcher's likely route for a recipient, as the renderer and the router would choose it. */
function route(b: Broadcast, g: Group, hasTemplate: boolean): 'whatsapp' | 'whatsappTemplate' | 'sms' | 'unreachable' {
  if (b.channelPolicy === 'sms_only') return g.sms ? 'sms' : 'unreachable';
  if (g.wa && g.win) return 'whatsapp';
  if (g.wa && hasTemplate) return 'whatsappTemplate';
  if (b.channelPolicy === 'whatsapp_only') return 'unreachable';
  return g.sms ? 'sms' : 'unreachable';
}

async function exclusions(knex: Knex, b: Broadcast, now: Date): Promise<{ audience: number; notActive: number; noConsent: number; noAddress: number }> {
  const spec: AudienceSpec = { activeOnly: false, now };
  if (b.lists.length) spec.lists = b.lists;
  if (b.segmentId !== null) spec.segment = b.segmentId;
  const { query } = await audienceQuery(knex, spec);
  const consent = "EXISTS (SELECT 1 FROM consent_state s WHERE s.contact_id = c.id AND s.purpose = 'updates' AND s.granted = ?)";
  const media = mediaFor(b.channelPolicy);
  const address = `EXISTS (SELECT 1 FROM contact_addresses a WHERE a.contact_id = c.id AND a.opted_out = ? AND a.channel IN (${media.map(() => '?').join(', ')}))`;
  const [row] = await query.select(
    knex.raw('count(*) AS n'),
    knex.raw("COALESCE(SUM(CASE WHEN c.status <> 'active' THEN 1 ELSE 0 END), 0) AS not_active"),
    knex.raw(`COALESCE(SUM(CASE WHEN c.status = 'active' AND NOT ${consent} THEN 1 ELSE 0 END), 0) AS no_consent`, [true]),
    knex.raw(`COALESCE(SUM(CASE WHEN c.status = 'active' AND ${consent} AND NOT ${address} THEN 1 ELSE 0 END), 0) AS no_address`, [true, false, ...media]),
  );
  return { audience: toInt(row.n), notActive: toInt(row.not_active), noConsent: toInt(row.no_consent), noAddress: toInt(row.no_address) };
}

function smsRate(config: Config): number {
  if (config.channels.twilio) return config.TWILIO_RATE_PER_SECOND;
  if (config.channels.africastalking) return config.AFRICASTALKING_RATE_PER_SECOND;
  return config.TWILIO_RATE_PER_SECOND;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

function sampleFor(b: Broadcast, version: MessageVersion, language: string, contact: ContactData, programme: string): PreviewSample {
  const free = renderContent({ version, language, contact, programme, footer: b.footer, policy: 'whatsapp_only', windowOpen: true });
  const tpl = version.variants[language]?.template ? renderContent({ version, language, contact, programme, footer: b.footer, policy: 'whatsapp_only', windowOpen: false }) : null;
  const smsText = renderSms({ type: 'text', text: renderText({ version, language, contact, programme, footer: b.footer }).text }, language);
  const m = measureSms(smsText);
  return {
    language,
    whatsapp: { type: free.type === 'text' && free.media ? free.media.kind : 'text', text: free.type === 'text' ? free.text : '', media: free.type === 'text' && free.media ? { ...free.media } : null },
    whatsappTemplate: tpl && tpl.type === 'template' ? { name: tpl.name, language: tpl.language, params: tpl.params } : null,
    sms: { text: smsText, segments: m.segments, encoding: m.encoding, characters: m.characters },
  };
}

/**
 * The preview of a broadcast if it were sent at `startAt` (default now). Samples are rendered for real
 * recipients (one per language is shown; up to 200 are measured for the SMS segments).
 */
export async function previewBroadcast(db: Pick<Database, 'knex'>, config: Config, id: number, opts: { now?: Date; startAt?: Date } = {}): Promise<Preview> {
  const knex = db.knex;
  const now = opts.now ?? new Date();
  const startAt = opts.startAt && opts.startAt.getTime() > now.getTime() ? opts.startAt : now;
  const b = await getBroadcast(knex, id);
  const version = await getVersion(knex, b.messageVersionId);
  const r = await recipientsOf(knex, config, b, version, startAt);
  const [groups, excl] = await Promise.all([grouped(knex, r, startAt), exclusions(knex, b, startAt)]);

  // Samples: up to 200 recipients with their language, rendered to measure SMS segments.
  const sampleRows = await r.query.clone().select('c.id', column(knex, r.language, 'language')).limit(SAMPLE);
  const contacts = await loadContactData(knex, sampleRows.map((x: Record<string, unknown>) => toInt(x.id)));
  const segmentsBy = new Map<string, number[]>();
  const samples = new Map<string, PreviewSample>();
  for (const row of sampleRows as Record<string, unknown>[]) {
    const language = String(row.language);
    const contact = contacts.get(toInt(row.id));
    if (!contact) continue;
    const s = sampleFor(b, version, language, contact, config.PROGRAMME_NAME);
    if (!samples.has(language)) samples.set(language, s);
    segmentsBy.set(language, [...(segmentsBy.get(language) ?? []), s.sms.segments]);
  }
  const fieldKeys = (await listFields(knex)).map((f) => f.key);
  const segmentsEach = (language: string): number => {
    const list = segmentsBy.get(language);
    if (list?.length) return list.reduce((a, x) => a + x, 0) / list.length;
    const placeholder = placeholderData(fieldKeys, language, config.PROGRAMME_NAME);
    return sampleFor(b, version, language, { name: placeholder.name, language, fields: placeholder.fields }, config.PROGRAMME_NAME).sms.segments;
  };

  const byLanguage = new Map<string, PreviewLanguage>();
  const byChannel = { whatsapp: 0, whatsappTemplate: 0, sms: 0, unreachable: 0 };
  let channelFallback = 0;
  const held = new Map<number, number>();
  for (const g of groups) {
    const l = byLanguage.get(g.language) ?? { language: g.language, recipients: 0, fromContact: 0, fromList: 0, fromProgramme: 0, whatsapp: 0, whatsappTemplate: 0, sms: 0, unreachable: 0, smsSegmentsEach: 0 };
    l.recipients += g.n;
    if (g.source === 'contact') l.fromContact += g.n;
    else if (g.source === 'list') l.fromList += g.n;
    else l.fromProgramme += g.n;
    const via = route(b, g, Boolean(version.variants[g.language]?.template));
    l[via] += g.n;
    byChannel[via] += g.n;
    if (via === 'sms' && g.wa && b.channelPolicy === 'whatsapp_then_sms') channelFallback += g.n;
    if (g.notBefore) held.set(g.notBefore.getTime(), (held.get(g.notBefore.getTime()) ?? 0) + g.n);
    byLanguage.set(g.language, l);
  }
  const languages = [...byLanguage.values()].sort((a, b2) => b2.recipients - a.recipients);
  for (const l of languages) l.smsSegmentsEach = round2(segmentsEach(l.language));
  const recipients = languages.reduce((a, l) => a + l.recipients, 0);
  const smsSegments = Math.round(languages.reduce((a, l) => a + l.sms * segmentsEach(l.language), 0));

  // Time: WhatsApp and SMS in parallel; quiet-hour groups start when they may; the tier adds days.
  const waSeconds = (byChannel.whatsapp + byChannel.whatsappTemplate) / Math.max(1, config.WHATSAPP_RATE_PER_SECOND);
  const smsSeconds = smsSegments / Math.max(1, smsRate(config));
  const sendSeconds = Math.max(waSeconds, smsSeconds);
  const tier = config.WHATSAPP_MESSAGING_TIER;
  const tierDays = Number.isFinite(tier) && byChannel.whatsappTemplate > tier ? Math.ceil(byChannel.whatsappTemplate / tier) - 1 : 0;
  const heldTotal = [...held.values()].reduce((a, n) => a + n, 0);
  const phases = [{ at: startAt.getTime(), n: recipients - heldTotal }, ...[...held.entries()].map(([at, n]) => ({ at, n }))].sort((a, x) => a.at - x.at);
  let t = startAt.getTime();
  for (const p of phases) if (p.n > 0 && recipients > 0) t = Math.max(t, p.at) + (sendSeconds * 1000 * p.n) / recipients;
  const finishAt = new Date(t + tierDays * 86_400_000);

  const smsCost = smsSegments * config.SMS_PRICE_PER_SEGMENT;
  const waCost = byChannel.whatsappTemplate * config.WHATSAPP_PRICE_PER_MESSAGE;
  const audience = excl.audience;
  const leftOut = audience - excl.notActive - excl.noConsent - excl.noAddress - recipients;
  return {
    computedAt: now.toISOString(),
    startAt: startAt.toISOString(),
    broadcastId: b.id,
    messageVersionId: version.id,
    version: version.version,
    audience,
    excluded: { notActive: excl.notActive, noConsent: excl.noConsent, noAddress: excl.noAddress, recentlyMessaged: Math.max(0, leftOut) },
    recipients,
    byLanguage: languages,
    languageFallback: languages.reduce((a, l) => a + l.fromList + l.fromProgramme, 0),
    byChannel,
    channelFallback,
    quiet: { held: heldTotal, until: [...held.entries()].sort((a, x) => a[0] - x[0]).map(([at, n]) => ({ at: new Date(at).toISOString(), recipients: n })) },
    cost: {
      currency: config.PRICE_CURRENCY,
      smsMessages: byChannel.sms,
      smsSegments,
      sms: round2(smsCost),
      whatsappTemplates: byChannel.whatsappTemplate,
      whatsapp: round2(waCost),
      total: round2(smsCost + waCost),
    },
    estimate: { whatsappSeconds: Math.round(waSeconds), smsSeconds: Math.round(smsSeconds), tierDays, finishAt: finishAt.toISOString() },
    samples: [...samples.values()],
  };
}

/** The preview without its samples (no personal data), as kept on the broadcast. */
export function previewSummary(p: Preview): Omit<Preview, 'samples'> {
  const { samples: _samples, ...rest } = p;
  return rest;
}

/** Computes the preview and keeps its summary on the broadcast (the composer shows it beside the send button). */
export async function previewAndKeep(db: Database, config: Config, id: number, opts: { now?: Date; startAt?: Date } = {}): Promise<Preview> {
  const p = await previewBroadcast(db, config, id, opts);
  await db.knex('broadcasts').where('id', id).update({ preview: JSON.stringify(previewSummary(p)) });
  return p;
}
