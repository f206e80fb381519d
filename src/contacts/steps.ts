/**
 * The contacts domain's router steps (see src/messaging/router.ts for the order):
 *   global       STOP and its translations, START, HELP, language switch — before anything else,
 *                even an open survey or complaint;
 *   confirmation YES / NO (or the WhatsApp button) answering the contact's open question;
 *   join         JOIN <keyword> (UNIRSE, ENTRAR, REJOINDRE) or a list keyword alone.
 * Every reply goes back on the medium and address the message came from, and is enqueued in the
 * same transaction as the change it reports.
 */
import { createHash } from 'node:crypto';
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { enqueue } from '../messaging/outbox.js';
import { messageLanguages, wording, type Wording } from '../messaging/texts.js';
import type { InboundContext, OutboundContent, RouterStep } from '../messaging/types.js';
import { recordConsent, type ConsentPurpose } from './consent.js';
import { setContactLanguage } from './contacts.js';
import { normaliseKeyword, parseGlobal, parseJoin, parseYesNo } from './keywords.js';
import { defaultList, getList, isSubscribed, keywordIndex, listLists, readList, subscribe, type List } from './lists.js';
import { clearTombstone } from './pseudonyms.js';
import { stopContact } from './stop.js';

/** How long a consent question stays answerable. */
export const CONFIRMATION_TTL_HOURS = 72;
const BUTTON = /^ayni:confirm:(\d+):(yes|no)$/;

const evidenceOf = (ctx: InboundContext) => ({ type: 'inbound_message' as const, ref: String(ctx.message.id) });

function languages(ctx: InboundContext, ...preferred: (string | null | undefined)[]): string[] {
  return [...preferred, ctx.contact.language, ctx.services.config.DEFAULT_LANGUAGE].filter((l): l is string => Boolean(l));
}

function say(ctx: InboundContext, key: string, langs: string[], vars: Record<string, unknown> = {}): Wording {
  return wording(key, langs, { programme: ctx.services.config.PROGRAMME_NAME, ...vars });
}

async function reply(trx: Knex, ctx: InboundContext, content: OutboundContent, language: string): Promise<number> {
  return enqueue(trx, { contactId: ctx.contact.id, purpose: 'reply', content, language, channel: ctx.address.medium, addressId: ctx.address.id });
}

const text = (w: Wording): OutboundContent => ({ type: 'text', text: w.text });

// ---------------------------------------------------------------------------------------- global

export const contactsGlobalStep: RouterStep = async (ctx) => {
  const cmd = parseGlobal(ctx.message.text);
  if (!cmd) return null;
  const { knex } = ctx.services.db;
  switch (cmd.kind) {
    case 'stop': {
      const w = say(ctx, 'stop-confirmation', languages(ctx, ctx.contact.language ?? cmd.lang));
      await knex.transaction(async (trx) => {
        await stopContact(trx, ctx.contact.id, {
          method: 'keyword',
          channel: ctx.address.medium,
          wording: { key: w.key, version: w.version, language: w.language },
          evidence: evidenceOf(ctx),
          reason: 'stop',
          at: ctx.message.receivedAt,
        });
        await reply(trx, ctx, text(w), w.language);
      });
      return 'stop';
    }
    case 'start':
      return start(ctx, cmd.lang);
    case 'help': {
      const w = say(ctx, 'help', languages(ctx, ctx.contact.language ?? cmd.lang));
      await reply(knex, ctx, text(w), w.language);
      return 'help';
    }
    case 'language': {
      if (!messageLanguages().includes(cmd.language)) {
        const w = say(ctx, 'language-unavailable', languages(ctx));
        await reply(knex, ctx, text(w), w.language);
        return 'language';
      }
      const w = say(ctx, 'language-set', [cmd.language]);
      await knex.transaction(async (trx) => {
        await setContactLanguage(trx, ctx.contact.id, cmd.language);
        await reply(trx, ctx, text(w), w.language);
      });
      ctx.contact.language = cmd.language;
      return 'language';
    }
  }
};

/** The lists a stop ended (those to offer back on START); the default list when there were none. */
async function listsToRestore(knex: Knex, ctx: InboundContext): Promise<List[]> {
  const contact = await knex('contacts').where('id', ctx.contact.id).first('stopped_at');
  const q = knex('subscriptions as s').join('lists as l', 'l.id', 's.list_id').where({ 's.contact_id': ctx.contact.id, 's.ended_reason': 'stop' }).whereNull('l.archived_at').select('l.*');
  if (contact?.stopped_at) q.where('s.ended_at', '>=', new Date(toDate(contact.stopped_at).getTime() - 60_000));
  const lists = (await q).map(readList);
  if (lists.length) return lists;
  const d = await defaultList(knex, ctx.services.config);
  return d ? [d] : [];
}

async function start(ctx: InboundContext, lang: string | null): Promise<string> {
  const { knex } = ctx.services.db;
  if (ctx.contact.status === 'blocked') return 'start-blocked';
  if (ctx.contact.status === 'active') {
    // Nothing to restart: START from an active contact is a plain JOIN.
    const list = await defaultList(knex, ctx.services.config);
    return list ? joinList(ctx, list, null) : unknownList(ctx, languages(ctx, lang));
  }
  const lists = await listsToRestore(knex, ctx);
  const langs = languages(ctx, ctx.contact.language ?? lang);
  const names = lists.map((l) => l.name).join(', ');
  await askQuestion(ctx, { kind: 'restart', listId: null, build: (whatsapp) => say(ctx, 'consent-prompt-restart', langs, { lists: names, whatsapp }) });
  return 'start';
}

// --------------------------------------------------------------------------------- confirmation

export const contactsConfirmationStep: RouterStep = async (ctx) => {
  const { knex } = ctx.services.db;
  let answer: 'yes' | 'no' | null = null;
  let pendingId: number | null = null;
  let method: 'button' | 'keyword' = 'keyword';
  const button = ctx.message.payload ? BUTTON.exec(ctx.message.payload) : null;
  if (button) {
    pendingId = Number(button[1]);
    answer = button[2] as 'yes' | 'no';
    method = 'button';
  } else {
    answer = parseYesNo(ctx.message.text);
  }
  if (!answer) return null;
  const q = knex('pending_confirmations')
    .where('contact_id', ctx.contact.id)
    .whereNull('answered_at')
    .where('expires_at', '>', ctx.message.receivedAt)
    .orderBy('id', 'desc');
  if (pendingId !== null) q.where('id', pendingId);
  const pending = await q.first();
  if (!pending) return null; // nothing open (or expired): the message goes on to the inbox
  const pid = toInt(pending.id);
  const wordingSeen = { key: String(pending.wording_key), version: String(pending.wording_version), language: String(pending.language) };
  const close = (trx: Knex, value: string) =>
    trx('pending_confirmations').where('id', pid).whereNull('answered_at').update({ answered_at: ctx.message.receivedAt, answer: value, answer_message_id: ctx.message.id });

  if (answer === 'no') {
    const w = say(ctx, 'consent-declined', [wordingSeen.language]);
    await knex.transaction(async (trx) => {
      await close(trx, 'no');
      await reply(trx, ctx, text(w), w.language);
    });
    return 'confirmation-no';
  }

  const grant = async (trx: Knex, purpose: ConsentPurpose) =>
    recordConsent(trx, {
      contactId: ctx.contact.id, purpose, action: 'grant', legalBasis: 'consent', channel: ctx.address.medium, method,
      wording: wordingSeen, evidence: evidenceOf(ctx), at: ctx.message.receivedAt,
    });

  if (pending.kind === 'list_join') {
    const list = pending.list_id === null ? null : await getList(knex, toInt(pending.list_id));
    if (!list || list.archivedAt) {
      await knex.transaction((trx) => close(trx, 'cancelled'));
      return unknownList(ctx, [wordingSeen.language]);
    }
    await knex.transaction(async (trx) => {
      if (!(await close(trx, 'yes'))) return; // answered meanwhile by another copy of this message
      const consentId = await grant(trx, list.purpose);
      await subscribe(trx, { listId: list.id, contactId: ctx.contact.id, channel: ctx.address.medium, consentId, at: ctx.message.receivedAt });
      await reactivate(trx, ctx);
      await reply(trx, ctx, welcome(ctx, list, wordingSeen.language), wordingSeen.language);
    });
    return 'confirmation-yes';
  }

  if (pending.kind === 'restart') {
    const lists = await listsToRestore(knex, ctx);
    await knex.transaction(async (trx) => {
      if (!(await close(trx, 'yes'))) return;
      const consentByPurpose = new Map<ConsentPurpose, number>();
      for (const l of lists) {
        if (!consentByPurpose.has(l.purpose)) consentByPurpose.set(l.purpose, await grant(trx, l.purpose));
        await subscribe(trx, { listId: l.id, contactId: ctx.contact.id, channel: ctx.address.medium, consentId: consentByPurpose.get(l.purpose)!, at: ctx.message.receivedAt });
      }
      await reactivate(trx, ctx);
      const w = say(ctx, 'restarted', [wordingSeen.language], { lists: lists.map((l) => l.name).join(', ') });
      await reply(trx, ctx, text(w), w.language);
    });
    return 'confirmation-yes';
  }
  return null; // another domain's question
};

/** A stopped contact who says YES to a consent question is active again; fresh consent lifts a tombstone and an opt-out on this address. */
async function reactivate(trx: Knex, ctx: InboundContext): Promise<void> {
  await trx('contacts').where('id', ctx.contact.id).where('status', 'stopped').update({ status: 'active', stopped_at: null, updated_at: new Date() });
  if (ctx.contact.status === 'stopped') ctx.contact.status = 'active';
  await clearTombstone(trx, ctx.address.address);
  // They answered on this address: a provider-level opt-out recorded on it no longer holds.
  await trx('contact_addresses').where('id', ctx.address.id).update({ opted_out: false });
}

function welcome(ctx: InboundContext, list: List, language: string): OutboundContent {
  const own = list.welcome[language] ?? list.welcome[language.split('-')[0]];
  if (own) return { type: 'text', text: own };
  return text(say(ctx, 'subscribed', [language], { list: list.name }));
}

// ----------------------------------------------------------------------------------------- join

export const contactsJoinStep: RouterStep = async (ctx) => {
  const { knex } = ctx.services.db;
  const join = parseJoin(ctx.message.text);
  let list: List | null = null;
  let language: string | null = null;
  if (join) {
    language = join.lang;
    if (join.keyword) list = (await keywordIndex(knex)).get(join.keyword)?.list ?? null;
    else list = await defaultList(knex, ctx.services.config);
  } else {
    const n = normaliseKeyword(ctx.message.text);
    if (!n || n.includes(' ')) return null;
    const hit = (await keywordIndex(knex)).get(n);
    if (!hit) return null;
    list = hit.list;
    language = hit.language;
  }
  if (ctx.contact.status === 'blocked') return 'join-blocked';
  if (language && language !== ctx.contact.language) {
    await setContactLanguage(knex, ctx.contact.id, language);
    ctx.contact.language = language;
  }
  if (!list) return unknownList(ctx, languages(ctx, language));
  return joinList(ctx, list, language);
};

async function unknownList(ctx: InboundContext, langs: string[]): Promise<string> {
  const { knex } = ctx.services.db;
  const joinWord = say(ctx, 'join-word', langs);
  const lang = joinWord.language;
  const lists = (await listLists(knex)).map((l) => {
    const words = l.keywords[lang] ?? Object.values(l.keywords)[0] ?? [];
    return { name: l.name, command: words.length ? `${joinWord.text} ${words[0]}` : l.isDefault ? joinWord.text : null };
  }).filter((l) => l.command);
  const w = say(ctx, 'unknown-list', [lang], { lists });
  await reply(knex, ctx, text(w), w.language);
  return 'join-unknown';
}

async function joinList(ctx: InboundContext, list: List, language: string | null): Promise<string> {
  const { knex } = ctx.services.db;
  const langs = languages(ctx, language, list.defaultLanguage);
  if (await isSubscribed(knex, list.id, ctx.contact.id)) {
    const w = say(ctx, 'already-subscribed', langs, { list: list.name });
    await reply(knex, ctx, text(w), w.language);
    return 'join-already';
  }
  if (list.doubleOptIn) {
    await askQuestion(ctx, { kind: 'list_join', listId: list.id, build: (whatsapp) => consentPrompt(ctx, list, langs, whatsapp) });
    return 'join-prompt';
  }
  // Single opt-in: the keyword itself is the consent.
  const w = say(ctx, 'subscribed', langs, { list: list.name });
  await knex.transaction(async (trx) => {
    const consentId = await recordConsent(trx, {
      contactId: ctx.contact.id, purpose: list.purpose, action: 'grant', legalBasis: 'consent', channel: ctx.address.medium, method: 'keyword',
      wording: { key: w.key, version: w.version, language: w.language }, evidence: evidenceOf(ctx), at: ctx.message.receivedAt,
    });
    await subscribe(trx, { listId: list.id, contactId: ctx.contact.id, channel: ctx.address.medium, consentId, at: ctx.message.receivedAt });
    await reactivate(trx, ctx);
    const own = list.welcome[w.language];
    await reply(trx, ctx, own ? { type: 'text', text: own } : text(w), w.language);
  });
  return 'join-subscribed';
}

/** The consent prompt for a list: the list's own wording for the language if staff wrote one, else the system wording. */
function consentPrompt(ctx: InboundContext, list: List, langs: string[], whatsapp: boolean): Wording {
  const language = say(ctx, 'consent-prompt', langs, { list: list.name }).language;
  const own = list.prompt[language];
  if (own) return { key: `list-prompt:${list.key}`.slice(0, 64), language, version: createHash('sha256').update(own).digest('hex').slice(0, 12), text: own };
  return say(ctx, 'consent-prompt', [language], { list: list.name, description: list.description, frequency: list.frequency[language] ?? null, whatsapp });
}

/**
 * Puts a YES/NO question to the contact: closes older open questions, records this one with the
 * wording shown, and sends it — WhatsApp with Yes/No buttons whose ids name the question, SMS as text.
 */
async function askQuestion(ctx: InboundContext, q: { kind: 'list_join' | 'restart'; listId: number | null; build: (whatsapp: boolean) => Wording }): Promise<void> {
  const { knex } = ctx.services.db;
  const whatsapp = ctx.address.medium === 'whatsapp';
  const w = q.build(whatsapp);
  const now = ctx.message.receivedAt;
  await knex.transaction(async (trx) => {
    await trx('pending_confirmations').where('contact_id', ctx.contact.id).whereNull('answered_at').update({ answered_at: now, answer: 'superseded' });
    const [row] = await trx('pending_confirmations')
      .insert({
        contact_id: ctx.contact.id, kind: q.kind, list_id: q.listId, channel: ctx.address.medium, language: w.language,
        wording_key: w.key, wording_version: w.version, inbound_message_id: ctx.message.id,
        created_at: now, expires_at: new Date(now.getTime() + CONFIRMATION_TTL_HOURS * 3_600_000),
      })
      .returning('id');
    const pid = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
    const content: OutboundContent = whatsapp
      ? {
          type: 'buttons',
          text: w.text,
          buttons: [
            { id: `ayni:confirm:${pid}:yes`, title: say(ctx, 'button-yes', [w.language]).text },
            { id: `ayni:confirm:${pid}:no`, title: say(ctx, 'button-no', [w.language]).text },
          ],
        }
      : { type: 'text', text: w.text };
    await reply(trx, ctx, content, w.language);
  });
}
