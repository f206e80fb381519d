/**
 * Checked batches of a big import's rows from a worker thread (import-worker.ts), so that reading
 * and checking the file runs on one core while the database work of the batch before runs on the
 * other. Small files are checked in the importing thread: for them a worker costs more than it saves.
 *
 * A big commit uses a worker; a big dry run, whose database work is light, checks in its own
 * thread but starts a worker for the commit that usually follows within minutes (`warmImportWorker`).
 * A worker is kept, idle and not holding the process open, for the next import, and ends after
 * IDLE_MS without work. An import that stops before the end of its file ends its worker.
 */
import { Worker } from 'node:worker_threads';
import { FileError, type ImportFormat } from './import-read.js';
import type { CheckedBatch, CheckOptions, Mapped } from './import-rows.js';
import { createWorker, siblingWorkerFile } from '../util/worker.js';

export interface WorkerJob {
  format: ImportFormat;
  content: Uint8Array | string;
  mapped: Mapped;
  options: CheckOptions;
}

export type WorkerMessage = { batch: CheckedBatch } | { end: true } | { error: string; file: boolean };

const IDLE_MS = 10 * 60_000;
let idle: { worker: Worker; timer: NodeJS.Timeout } | null = null;
let started = 0;
let jobs = 0;

/** Import workers this process has started (each serves imports one after another), and files they have read. */
export function importWorkerStats(): { started: number; jobs: number } {
  return { started, jobs };
}

/** Whether a worker can run here (built, or from source with tsx). */
export function importWorkerAvailable(): boolean {
  return siblingWorkerFile(import.meta.url, 'import-worker') !== undefined;
}

function takeWorker(): Worker {
  if (idle) {
    const { worker, timer } = idle;
    idle = null;
    clearTimeout(timer);
    worker.ref();
    return worker;
  }
  const file = siblingWorkerFile(import.meta.url, 'import-worker');
  if (!file) throw new Error('the import worker cannot run here');
  started++;
  return createWorker(file);
}

/** Starts a worker for a coming import, unless one is idle already. */
export function warmImportWorker(): void {
  if (idle || !importWorkerAvailable()) return;
  keepWorker(takeWorker());
}

function keepWorker(worker: Worker): void {
  if (idle) {
    void worker.terminate();
    return;
  }
  worker.unref();
  const timer = setTimeout(() => {
    if (idle?.worker === worker) idle = null;
    void worker.terminate();
  }, IDLE_MS);
  timer.unref();
  idle = { worker, timer };
}

/**
 * The checked batches of the file, from a worker. Throws a FileError as the worker found it; any
 * other failure as an Error naming only its kind. Ending the iteration early ends the worker.
 */
export async function* workerBatches(job: WorkerJob): AsyncGenerator<CheckedBatch> {
  const worker = takeWorker();
  const queue: WorkerMessage[] = [];
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  let exited = false;
  let finished = false;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const onMessage = (m: WorkerMessage) => {
    queue.push(m);
    notify();
  };
  const onError = (e: Error) => {
    failure = new Error(`the import worker failed (${e.name})`);
    notify();
  };
  const onExit = () => {
    exited = true;
    notify();
  };
  worker.on('message', onMessage);
  worker.on('error', onError);
  worker.on('exit', onExit);
  try {
    jobs++;
    worker.postMessage({ job });
    for (;;) {
      const m = queue.shift();
      if (!m) {
        if (failure) throw failure;
        if (exited) throw new Error('the import worker stopped before the end of the file');
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      if ('batch' in m) {
        worker.postMessage('next');
        yield m.batch;
      } else if ('end' in m) {
        finished = true;
        return;
      } else {
        finished = true;
        throw m.file ? new FileError(m.error) : new Error(`the import worker failed (${m.error})`);
      }
    }
  } finally {
    worker.off('message', onMessage);
    worker.off('error', onError);
    worker.off('exit', onExit);
    if (finished && !exited && !failure) keepWorker(worker);
    else if (!exited) await worker.terminate();
  }
}
