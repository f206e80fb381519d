/**
 * `ayni broadcasts …` commands (counts only: a shell has no role, so nothing here prints personal data):
 *   ayni broadcasts list [--status S]
 *   ayni broadcasts create --name N --message KEY (--list KEY… | --segment KEY) [--channels P] [--quiet 20:00-08:00|off]
 *                          [--exclude-recent HOURS] [--footer LANG=TEXT…] [--repeat daily|weekly]
 *   ayni broadcasts preview ID [--at ISO-TIME]
 *   ayni broadcasts send ID [--at ISO-TIME]        now, or at a time (a daily or weekly one starts then)
 *   ayni broadcasts pause|resume|cancel ID
 *   ayni broadcasts stats ID
 *   ayni broadcasts run-due                         run the broadcasts job once now
 * The key message must have an approved version (approval needs two staff users, on the console or the API).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Booted } from '../boot.js';
import type { Actor } from '../staff/audit.js';
import { HttpError } from '../http/errors.js';
import { findSegment } from '../contacts/segments/index.js';
import { CHANNEL_POLICIES, type ChannelPolicy } from './audience.js';
import {
  BROADCAST_STATUSES,
  RECURRENCES,
  broadcastStats,
  cancelBroadcast,
  createBroadcast,
  getBroadcast,
  listBroadcasts,
  pauseBroadcast,
  resumeBroadcast,
  runDueBroadcasts,
  scheduleBroadcast,
  sendBroadcast,
  type BroadcastStatus,
  type Recurrence,
} from './broadcasts.js';
import { getMessage } from './messages.js';
import { previewAndKeep } from './preview.js';

const CLI_ACTOR: Actor = { type: 'system', id: null, label: 'cli', role: 'system' };
const out = (s: string) => process.stdout.write(s + '\n');

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
};
const time = (v: string) => {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || !/[zZ]|[+-]\d\d:?\d\d$/.test(v)) throw new InvalidArgumentError('must be a date and time with its offset, such as 2026-12-01T09:00-05:00');
  return d;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerBroadcastsCli(program: Command, withService: (fn: (b: Booted) => Promise<void>) => Promise<void>): void {
  const c = program.command('broadcasts').description('broadcasts of approved key messages');

  c.command('list')
    .description('list broadcasts, newest first')
    .addOption(new Option('--status <status>').choices([...BROADCAST_STATUSES]))
    .action((o: { status?: BroadcastStatus }) =>
      withService(async ({ db }) => {
        const { data, total } = await listBroadcasts(db.knex, { status: o.status, limit: 200 });
        for (const b of data) out(`${String(b.id).padStart(5)}  ${b.status.padEnd(10)} ${String(b.recipients ?? '-').padStart(8)}  ${b.name}  (${b.messageKey} v${b.messageVersion})`);
        out(`${data.length} of ${total}`);
      }),
    );

  c.command('create')
    .description('compose a draft broadcast of a key message\'s approved version')
    .requiredOption('--name <name>', 'what staff call it')
    .requiredOption('--message <key>', 'the key message (key or id)')
    .option('--list <key>', 'a list key (repeat for several)', collect)
    .option('--segment <key>', 'a saved segment key')
    .addOption(new Option('--channels <policy>', 'channel policy').choices([...CHANNEL_POLICIES]).default('whatsapp_then_sms'))
    .option('--quiet <hours>', 'quiet hours in each contact\'s time zone, HH:MM-HH:MM, or off (default: QUIET_HOURS)')
    .option('--exclude-recent <hours>', 'leave out contacts another broadcast messaged in the last HOURS', positiveInt)
    .option('--footer <lang=text>', 'standing footer in a language (repeat per language)', collect)
    .addOption(new Option('--repeat <when>', 'repeat').choices(RECURRENCES.filter((r) => r !== 'none')))
    .action((o: { name: string; message: string; list?: string[]; segment?: string; channels: ChannelPolicy; quiet?: string; excludeRecent?: number; footer?: string[]; repeat?: Recurrence }) =>
      withService(async ({ db, config }) => {
        const message = await getMessage(db.knex, /^\d+$/.test(o.message) ? Number(o.message) : o.message);
        const lists: number[] = [];
        for (const key of o.list ?? []) {
          const row = await db.knex('lists').where('key', key).first('id');
          if (!row) throw new HttpError(400, 'validation_failed', `There is no list with the key ${key}`);
          lists.push(Number(row.id));
        }
        const segment = o.segment ? await findSegment(db.knex, o.segment) : null;
        if (o.segment && !segment) throw new HttpError(400, 'validation_failed', `There is no segment with the key ${o.segment}`);
        let quietHours: { start: string; end: string } | null | undefined;
        if (o.quiet !== undefined) {
          const m = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(o.quiet.trim());
          if (o.quiet.trim().toLowerCase() === 'off') quietHours = null;
          else if (m) quietHours = { start: m[1], end: m[2] };
          else throw new HttpError(400, 'validation_failed', '--quiet must be HH:MM-HH:MM or off');
        }
        const footer: Record<string, string> = {};
        for (const f of o.footer ?? []) {
          const i = f.indexOf('=');
          if (i < 2) throw new HttpError(400, 'validation_failed', '--footer must be LANG=TEXT, such as es="Nunca te pediremos dinero."');
          footer[f.slice(0, i).trim()] = f.slice(i + 1).trim();
        }
        const b = await createBroadcast(db, config, CLI_ACTOR, {
          name: o.name,
          messageId: message.id,
          lists,
          segmentId: segment?.id ?? null,
          channelPolicy: o.channels,
          quietHours,
          excludeRecentHours: o.excludeRecent ?? null,
          footer: Object.keys(footer).length ? footer : null,
          recurrence: o.repeat ?? 'none',
        });
        out(`Created draft broadcast ${b.id} of ${message.key} version ${b.messageVersion}. Preview it: ayni broadcasts preview ${b.id}`);
      }),
    );

  c.command('preview')
    .description('who and how many, by language and channel, cost and time to finish (no personal data)')
    .argument('<id>', 'broadcast id', positiveInt)
    .option('--at <time>', 'as if sent at this time (ISO, with offset)', time)
    .action((id: number, o: { at?: Date }) =>
      withService(async ({ db, config }) => {
        const p = await previewAndKeep(db, config, id, { startAt: o.at });
        out(`Recipients: ${p.recipients} (audience ${p.audience}; left out: ${p.excluded.notActive} stopped or blocked, ${p.excluded.noConsent} without consent, ${p.excluded.noAddress} without an address, ${p.excluded.recentlyMessaged} messaged recently)`);
        for (const l of p.byLanguage) out(`  ${l.language.padEnd(6)} ${String(l.recipients).padStart(8)}  (own ${l.fromContact}, list default ${l.fromList}, programme default ${l.fromProgramme}; WhatsApp ${l.whatsapp}, template ${l.whatsappTemplate}, SMS ${l.sms} × ${l.smsSegmentsEach} segments, unreachable ${l.unreachable})`);
        out(`Language fallback: ${p.languageFallback}; WhatsApp → SMS fallback: ${p.channelFallback}; held by quiet hours: ${p.quiet.held}`);
        out(`Cost: SMS ${p.cost.smsSegments} segments ${p.cost.sms} ${p.cost.currency} + WhatsApp ${p.cost.whatsappTemplates} templates ${p.cost.whatsapp} ${p.cost.currency} = ${p.cost.total} ${p.cost.currency}`);
        out(`Sending: WhatsApp ${p.estimate.whatsappSeconds} s, SMS ${p.estimate.smsSeconds} s${p.estimate.tierDays ? `, +${p.estimate.tierDays} day(s) for the WhatsApp tier` : ''}; expected to finish ${p.estimate.finishAt}`);
      }),
    );

  c.command('send')
    .description('send a draft now, or at a time; a daily or weekly broadcast starts at --at (default now)')
    .argument('<id>', 'broadcast id', positiveInt)
    .option('--at <time>', 'when (ISO, with offset)', time)
    .action((id: number, o: { at?: Date }) =>
      withService(async ({ db, config }) => {
        const b = await getBroadcast(db.knex, id);
        if (o.at || b.recurrence !== 'none') {
          const s = await scheduleBroadcast(db, CLI_ACTOR, id, o.at ?? new Date());
          out(`Broadcast ${id} is ${s.status}, first at ${s.nextRunAt ?? s.sendAt}.`);
        } else {
          const s = await sendBroadcast(db, config, CLI_ACTOR, id);
          out(`Broadcast ${id} is sending to ${s.recipients} recipients.`);
        }
      }),
    );

  for (const [name, fn, verb] of [
    ['pause', pauseBroadcast, 'paused'],
    ['resume', resumeBroadcast, 'resumed'],
    ['cancel', cancelBroadcast, 'cancelled'],
  ] as const) {
    c.command(name)
      .description(`${name} a broadcast`)
      .argument('<id>', 'broadcast id', positiveInt)
      .action((id: number) =>
        withService(async ({ db }) => {
          const r = (await fn(db, CLI_ACTOR, id)) as { broadcast: { status: string } } & Record<string, unknown>;
          const n = (r.held ?? r.released ?? r.cancelled) as number;
          out(`Broadcast ${id} ${verb} (${n} messages); it is now ${r.broadcast.status}.`);
        }),
      );
  }

  c.command('stats')
    .description('queued, held, sent, delivered, read, failed and skipped (by reason), per channel and language')
    .argument('<id>', 'broadcast id', positiveInt)
    .action((id: number) =>
      withService(async ({ db }) => {
        const b = await getBroadcast(db.knex, id);
        const s = await broadcastStats(db.knex, id);
        out(`${b.name}: ${b.status}`);
        out(`total ${s.total}  queued ${s.queued}  paused ${s.held}  sent ${s.sent}  delivered ${s.delivered}  read ${s.read}  failed ${s.failed}  skipped ${s.skipped}  cancelled ${s.cancelled}`);
        for (const [k, n] of Object.entries(s.failedBy)) out(`  failed ${k}: ${n}`);
        for (const [k, n] of Object.entries(s.skippedBy)) out(`  skipped ${k}: ${n}`);
        for (const [k, v] of Object.entries(s.byChannel)) out(`  channel ${k}: ${Object.entries(v).map(([a, n]) => `${a} ${n}`).join(', ')}`);
        for (const [k, v] of Object.entries(s.byLanguage)) out(`  language ${k}: ${Object.entries(v).map(([a, n]) => `${a} ${n}`).join(', ')}`);
      }),
    );

  c.command('run-due')
    .description('run the broadcasts job once now: start due scheduled and recurring broadcasts, complete finished ones')
    .action(() =>
      withService(async ({ db, config, log }) => {
        const r = await runDueBroadcasts(db, config, log);
        out(`started ${r.started.length}, occurrences ${r.occurrences.length}, completed ${r.completed}, failed ${r.failed}`);
      }),
    );
}
