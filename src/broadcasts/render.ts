/**
 * Broadcast content at send time. Broadcast rows sit in the outbox with content NULL; when the
 * dispatcher claims a batch it asks the renderer of each broadcast for the content of its rows
 * (src/messaging/dispatcher-render.ts). `installBroadcastRenderer` registers one resolver for every
 * broadcast id: it loads the broadcast and the exact key-message version it sends once (kept while
 * the process lives; both never change once the broadcast is sending), and renders each batch with
 * two queries — the contacts' names, languages and fields, and (when the message maps a WhatsApp
 * template) whether their WhatsApp window is open — from templates compiled once per version and
 * language (templates.ts).
 *
 * The channel policy is the outbox row's channel (set at fan-out); the renderer adds what only it
 * knows: outside the 24-hour window, a variant with an approved template goes as that template.
 */
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toDateOrNull, toInt } from '../db/values.js';
import { setBroadcastRendererResolver, type BroadcastRenderer, type RenderTarget } from '../messaging/dispatcher-render.js';
import type { OutboundContent } from '../messaging/types.js';
import { parseFields } from '../contacts/fields.js';
import { readBroadcast, type Broadcast } from './broadcasts.js';
import { renderContent, type ContactData } from './content.js';
import { getVersion, type MessageVersion } from './messages.js';

const WINDOW_MS = 24 * 3_600_000;
const MAX_CACHED = 500;

interface Loaded {
  broadcast: Broadcast;
  version: MessageVersion;
  needsWindow: boolean;
}

async function chunked<T>(ids: readonly number[], q: (ids: number[]) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < ids.length; i += 500) out.push(...(await q(ids.slice(i, i + 500))));
  return out;
}

/** Contacts' template data, by id. */
export async function loadContactData(knex: Knex, ids: readonly number[]): Promise<Map<number, ContactData>> {
  const rows = await chunked(ids, (chunk) => knex('contacts').whereIn('id', chunk).select('id', 'name', 'language', 'fields'));
  return new Map(rows.map((r: Record<string, unknown>) => [toInt(r.id), { name: (r.name as string | null) ?? null, language: (r.language as string | null) ?? null, fields: parseFields(r.fields) }]));
}

/** Contacts whose WhatsApp 24-hour window is open at `now` (a usable address they wrote from in the last day). */
export async function openWindows(knex: Knex, ids: readonly number[], now: number): Promise<Set<number>> {
  const since = new Date(now - WINDOW_MS);
  const rows = await chunked(ids, (chunk) =>
    knex('contact_addresses').whereIn('contact_id', chunk).where({ channel: 'whatsapp', opted_out: false }).where('last_inbound_at', '>=', since).select('contact_id', 'last_inbound_at'),
  );
  return new Set(rows.filter((r: Record<string, unknown>) => (toDateOrNull(r.last_inbound_at)?.getTime() ?? 0) >= since.getTime()).map((r: Record<string, unknown>) => toInt(r.contact_id)));
}

export class BroadcastRendering {
  private readonly cache = new Map<number, Promise<Loaded | null>>();

  constructor(
    private readonly db: Pick<Database, 'knex'>,
    private readonly config: Pick<Config, 'PROGRAMME_NAME'>,
    private readonly clock: () => number = Date.now,
  ) {}

  private load(broadcastId: number): Promise<Loaded | null> {
    let p = this.cache.get(broadcastId);
    if (!p) {
      p = (async () => {
        const row = await this.db.knex('broadcasts').where('id', broadcastId).first();
        if (!row) return null;
        const broadcast = readBroadcast(row);
        const version = await getVersion(this.db.knex, broadcast.messageVersionId);
        if (version.status !== 'approved' && version.status !== 'superseded') return null;
        const needsWindow = broadcast.channelPolicy !== 'sms_only' && Object.values(version.variants).some((v) => v.template);
        return { broadcast, version, needsWindow };
      })();
      // A failed load is not kept: the next batch tries again.
      p.catch(() => this.cache.delete(broadcastId));
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(broadcastId, p);
    }
    return p;
  }

  /** The renderer of one broadcast, or null when it does not exist or its version is not approved. */
  async rendererFor(broadcastId: number): Promise<BroadcastRenderer | null> {
    const loaded = await this.load(broadcastId);
    if (!loaded) return null;
    return (targets) => this.render(loaded, targets);
  }

  private async render(l: Loaded, targets: readonly RenderTarget[]): Promise<(OutboundContent | null)[]> {
    const ids = [...new Set(targets.map((t) => t.contactId))];
    const now = this.clock();
    const [contacts, windows] = await Promise.all([loadContactData(this.db.knex, ids), l.needsWindow ? openWindows(this.db.knex, ids, now) : Promise.resolve(new Set<number>())]);
    return targets.map((t) => {
      const contact = contacts.get(t.contactId);
      if (!contact) return null;
      return renderContent({
        version: l.version,
        language: t.language,
        contact,
        programme: this.config.PROGRAMME_NAME,
        footer: l.broadcast.footer,
        policy: l.broadcast.channelPolicy,
        // Without a template to fall back on, the text goes either way: the dispatcher picks the route.
        windowOpen: l.needsWindow ? windows.has(t.contactId) : true,
      });
    });
  }
}

/** Registers the broadcasts domain as the dispatcher's renderer of every broadcast (call once per process). */
export function installBroadcastRenderer(services: { db: Pick<Database, 'knex'>; config: Pick<Config, 'PROGRAMME_NAME'> }): BroadcastRendering {
  const rendering = new BroadcastRendering(services.db, services.config);
  setBroadcastRendererResolver((id) => rendering.rendererFor(id));
  return rendering;
}
