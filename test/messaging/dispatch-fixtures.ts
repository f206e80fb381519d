/**
 * Shared set-up for the dispatcher's tests and benchmarks: contacts with addresses and consent,
 * inserted set-based (thousands at once), and outbox rows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Knex } from '../../src/db/orm.js';
import { toInt } from '../../src/db/values.js';
import type { OutboundContent, Purpose } from '../../src/messaging/types.js';

export interface SeedOptions {
  count: number;
  /** Phone numbers are +519 followed by 8 digits starting at this number. */
  firstNumber?: number;
  whatsapp?: boolean;
  sms?: boolean;
  /** When the person last wrote on WhatsApp (opens the 24-hour window); null: never. Default an hour ago. */
  lastInboundAt?: Date | null;
  /** Purposes consented to (default ['updates', 'surveys']). */
  consents?: string[];
  language?: string;
}

export interface SeededContact {
  id: number;
  phone: string;
  whatsappAddressId: number | null;
  smsAddressId: number | null;
}

export function phoneOf(n: number): string {
  return `+519${String(n).padStart(8, '0')}`;
}

function ids(rows: unknown[]): number[] {
  return rows.map((r) => toInt(typeof r === 'object' && r !== null ? (r as { id: unknown }).id : r));
}

/** Inserts `count` active contacts with addresses and consent, 500 per statement. */
export async function seedContacts(knex: Knex, o: SeedOptions): Promise<SeededContact[]> {
  const now = new Date();
  const first = o.firstNumber ?? 0;
  const lastInbound = o.lastInboundAt === undefined ? new Date(now.getTime() - 3_600_000) : o.lastInboundAt;
  const consents = o.consents ?? ['updates', 'surveys'];
  const out: SeededContact[] = [];
  for (let start = 0; start < o.count; start += 500) {
    const n = Math.min(500, o.count - start);
    const contactIds = ids(
      await knex('contacts')
        .insert(Array.from({ length: n }, () => ({ status: 'active', language: o.language ?? 'es', created_at: now, updated_at: now })))
        .returning('id'),
    );
    const batch: SeededContact[] = contactIds.map((id, i) => ({ id, phone: phoneOf(first + start + i), whatsappAddressId: null, smsAddressId: null }));
    if (o.whatsapp !== false) {
      const wa = ids(await knex('contact_addresses').insert(batch.map((c) => ({ contact_id: c.id, channel: 'whatsapp', kind: 'phone', address: c.phone, opted_out: false, last_inbound_at: lastInbound, created_at: now }))).returning('id'));
      wa.forEach((id, i) => (batch[i].whatsappAddressId = id));
    }
    if (o.sms) {
      const sms = ids(await knex('contact_addresses').insert(batch.map((c) => ({ contact_id: c.id, channel: 'sms', kind: 'phone', address: c.phone, opted_out: false, created_at: now }))).returning('id'));
      sms.forEach((id, i) => (batch[i].smsAddressId = id));
    }
    for (const purpose of consents) {
      const consentIds = ids(
        await knex('consents')
          .insert(batch.map((c) => ({ contact_id: c.id, purpose, action: 'grant', legal_basis: 'consent', channel: 'import', method: 'import', evidence_type: 'import', evidence_ref: 'import:test', proxy: false, at: now })))
          .returning('id'),
      );
      await knex('consent_state').insert(batch.map((c, i) => ({ contact_id: c.id, purpose, granted: true, consent_id: consentIds[i], at: now })));
    }
    out.push(...batch);
  }
  return out;
}

export interface OutboxInput {
  contactId: number;
  purpose?: Purpose;
  priority?: number;
  broadcastId?: number | null;
  content?: OutboundContent | null;
  channel?: string | null;
  addressId?: number | null;
  notBefore?: Date | null;
  language?: string | null;
  createdAt?: Date;
}

/** Inserts outbox rows (500 per statement); returns their ids in order. */
export async function insertOutbox(knex: Knex, rows: OutboxInput[]): Promise<number[]> {
  const out: number[] = [];
  const now = new Date();
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500).map((r) => {
      const purpose = r.purpose ?? 'updates';
      return {
        contact_id: r.contactId,
        purpose,
        priority: r.priority ?? (purpose === 'reply' ? 1 : purpose === 'surveys' ? 2 : 3),
        broadcast_id: r.broadcastId ?? null,
        content: r.content === null ? null : JSON.stringify(r.content ?? { type: 'text', text: 'Hola' }),
        language: r.language ?? null,
        channel: r.channel ?? null,
        address_id: r.addressId ?? null,
        not_before: r.notBefore ?? null,
        status: 'queued',
        attempts: 0,
        created_at: r.createdAt ?? now,
      };
    });
    out.push(...ids(await knex('outbox').insert(chunk).returning('id')));
  }
  return out;
}

export async function outboxRow(knex: Knex, id: number): Promise<Record<string, unknown>> {
  return knex('outbox').where('id', id).first();
}

export async function countBy(knex: Knex, column: string, where: Record<string, unknown> = {}): Promise<Record<string, number>> {
  const rows = await knex('outbox').where(where).groupBy(column).select(column).count({ n: '*' });
  return Object.fromEntries(rows.map((r: Record<string, unknown>) => [String(r[column]), toInt(r.n)]));
}

export interface DispatcherChild {
  child: ChildProcess;
  ready: { claimer: string; maxHeld: number };
  /** Lines the child printed after the first, parsed. */
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
  /** SIGTERM, then the counts it printed. */
  stop(): Promise<Record<string, number> | null>;
  kill(): Promise<void>;
}

/** Starts test/messaging/fixtures/dispatch-child.ts with this environment and waits until it dispatches. */
export async function spawnDispatcher(env: Record<string, string>): Promise<DispatcherChild> {
  const script = fileURLToPath(new URL('./fixtures/dispatch-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines: Record<string, unknown>[] = [];
  const rl = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ claimer: string; maxHeld: number }>((resolve, reject) => {
    rl.on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (parsed.ready) resolve(parsed as unknown as { claimer: string; maxHeld: number });
      else lines.push(parsed);
    });
    void exited.then((code) => reject(new Error(`the dispatcher child exited (${code}) before it was ready`)));
  });
  return {
    child,
    ready,
    lines,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      const last = lines.find((l) => l.stopped);
      return (last?.counts as Record<string, number>) ?? null;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Polls until `check` returns true (or throws after `timeoutMs`). */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
