/**
 * Worker threads for the project's own modules, run from source or built.
 *
 * Built (`npm start`), a module's worker runs its compiled sibling `.js` file. From source (`npm run
 * dev`, tests, benchmarks) the `.ts` file is loaded inside the worker through tsx's programmatic API:
 * workers do not inherit tsx's loader on Node 20. Without tsx (it is a development dependency) a
 * `.ts` file cannot run in a worker.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

let tsxApi: string | null | undefined;

/**
 * The URL of tsx's programmatic ESM API, when tsx is installed. Resolved through require (which
 * works under vitest too); its CommonJS build cannot be import()ed from a worker, so the ESM build
 * beside it is used.
 */
export function tsxApiUrl(): string | undefined {
  if (tsxApi === undefined) {
    try {
      const esm = createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs');
      tsxApi = existsSync(esm) ? pathToFileURL(esm).href : null;
    } catch {
      tsxApi = null;
    }
  }
  return tsxApi ?? undefined;
}

/** A worker running `filename` (an absolute path); a .ts file is loaded through tsx's API inside the worker. */
export function createWorker(filename: string, options: WorkerOptions = {}): Worker {
  if (!filename.endsWith('.ts')) return new Worker(filename, options);
  const api = tsxApiUrl();
  if (!api) throw new Error('tsx is needed to run a .ts file in a worker: run `npm run build` and start from dist/');
  const code = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(pathToFileURL(filename).href)}, ${JSON.stringify(import.meta.url)}));`;
  return new Worker(code, { ...options, eval: true });
}

/**
 * The file of the module `name` beside the module at `metaUrl` (pass `import.meta.url`): the same
 * extension as that module's own (.js built, .ts from source), or undefined when it cannot run in
 * a worker here.
 */
export function siblingWorkerFile(metaUrl: string, name: string): string | undefined {
  const here = fileURLToPath(metaUrl);
  const file = here.replace(/[^/\\]+$/, `${name}${here.endsWith('.ts') ? '.ts' : '.js'}`);
  if (!existsSync(file)) return undefined;
  return file.endsWith('.ts') && !tsxApiUrl() ? undefined : file;
}
