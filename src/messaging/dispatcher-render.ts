/**
 * Content for broadcast rows. The fan-out leaves `content` NULL in the outbox (one narrow row per
 * recipient, inserted by one INSERT … SELECT); the dispatcher asks a renderer for the text at send
 * time, in the contact's language, in batches.
 *
 * The broadcasts domain fills this registry: either one renderer per broadcast id
 * (`registerBroadcastRenderer`) or one resolver that finds the renderer of any broadcast id
 * (`setBroadcastRendererResolver`, e.g. loading the key message's versions on first use). A row
 * whose content is NULL and for which no renderer gives content fails with error 'no_content'.
 * A row that has content (a broadcast inserted with its text) is sent as it is.
 */
import type { OutboundContent } from './types.js';

export interface RenderTarget {
  outboxId: number;
  contactId: number;
  broadcastId: number;
  /** The row's language, else the contact's. */
  language: string | null;
}

/** Returns one content (or null: nothing to send) per target, in the same order. */
export type BroadcastRenderer = (targets: readonly RenderTarget[]) => Promise<(OutboundContent | null)[]> | (OutboundContent | null)[];

export type BroadcastRendererResolver = (broadcastId: number) => Promise<BroadcastRenderer | null> | BroadcastRenderer | null;

const renderers = new Map<number, BroadcastRenderer>();
let resolver: BroadcastRendererResolver | null = null;

export function registerBroadcastRenderer(broadcastId: number, renderer: BroadcastRenderer): void {
  renderers.set(broadcastId, renderer);
}

export function unregisterBroadcastRenderer(broadcastId: number): void {
  renderers.delete(broadcastId);
}

/** One function that finds the renderer of any broadcast (registered renderers win). Pass null to remove it. */
export function setBroadcastRendererResolver(r: BroadcastRendererResolver | null): void {
  resolver = r;
}

export async function rendererFor(broadcastId: number): Promise<BroadcastRenderer | null> {
  return renderers.get(broadcastId) ?? (resolver ? await resolver(broadcastId) : null);
}
