/** Runs a TypeScript module of the project in a child process (node --import tsx) that announces itself with one JSON line. */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ROOT } from '../../../src/paths.js';

export interface Child<T> {
  /** What the child printed on its first line. */
  info: T;
  /** Closes the child's stdin (its cue to clean up and exit) and waits for it to exit. */
  stop(): Promise<void>;
}

export async function startChild<T>(script: string, args: string[] = [], env: Record<string, string> = {}): Promise<Child<T>> {
  // BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the child (the server under load).
  const nodeArgs = (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await Promise.race([lines.next(), exited.then(() => ({ done: true as const, value: undefined }))]);
  if (first.done) throw new Error(`${script} ended before it was ready (exit code ${await exited})`);
  const info = JSON.parse(first.value) as T;
  return {
    info,
    stop: async () => {
      child.stdin.end();
      const timer = setTimeout(() => child.kill(), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
