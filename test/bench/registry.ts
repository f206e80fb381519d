/**
 * Every benchmark `npm run bench` knows, in the order it runs them. Each issue appends its own:
 * a module in test/bench/ default-exporting a `Benchmark` (see types.ts).
 */
import type { Benchmark } from './types.js';
import apiThroughput from './api-throughput.js';
import segments from './segments.js';
import contactImport from './import.js';
import webhooks from './webhooks.js';
import surveys from './surveys.js';
import dispatch from './dispatch.js';
import cashDuplicates from './cash-duplicates.js';
import broadcasts from './broadcasts.js';
import dashboard from './dashboard.js';

export const benchmarks: Benchmark[] = [apiThroughput, segments, contactImport, webhooks, broadcasts, surveys, dispatch, cashDuplicates, dashboard];
