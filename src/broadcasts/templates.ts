/**
 * Key-message text is Handlebars over what the programme knows of a contact:
 *
 *   {{name}}  {{language}}  {{programme}}  {{fields.region}}  {{#if fields.region}}…{{else}}…{{/if}}
 *
 * `checkTemplate` reads a template's syntax tree and names every variable it uses: syntax errors
 * are refused when a draft is saved; variables that are not a known contact field are refused when
 * a version is approved (a field may be created after the draft is written, but nothing unknown
 * goes out). Only `if`, `unless` and `else` are allowed as helpers: text, not code.
 *
 * `compiled` compiles a template once per (version, language, part) and keeps it: the dispatcher
 * renders thousands of messages a second from a handful of templates. Output is plain text (no HTML
 * escaping). A variable with no value renders empty.
 */
import { editDistance } from '../util/text.js';
import Handlebars from 'handlebars';

const hb = Handlebars.create();

/** Variables every contact has, besides `fields.<key>` for each custom contact field. */
export const BUILT_IN_VARIABLES = ['name', 'language', 'programme'] as const;
const BLOCK_HELPERS = new Set(['if', 'unless']);

export interface TemplateCheck {
  /** Syntax errors and constructs that are not allowed (helpers, partials, `../`): the template cannot be saved. */
  errors: string[];
  /** Every variable the template uses, e.g. ["name", "fields.region"]. */
  variables: string[];
}

interface Node {
  type: string;
  [k: string]: unknown;
}

/** Parses a template and lists its variables; `errors` says what is wrong, with line numbers. */
export function checkTemplate(source: string): TemplateCheck {
  const errors: string[] = [];
  const variables = new Set<string>();
  let ast: Node;
  try {
    ast = hb.parse(source) as unknown as Node;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0].replace(/^Parse error on line (\d+):?/, 'syntax error on line $1:');
    return { errors: [msg.includes('line') ? msg : `syntax error: ${msg}`], variables: [] };
  }
  const line = (n: Node) => ((n.loc as { start?: { line?: number } } | undefined)?.start?.line ?? 1);
  const path = (n: Node, where: Node): string | null => {
    if (n.type !== 'PathExpression') {
      errors.push(`line ${line(where)}: only variable names may be used here (found a ${String(n.type).replace(/Literal$/, '').toLowerCase()})`);
      return null;
    }
    if (n.data || (n.depth as number) > 0 || n.this) {
      errors.push(`line ${line(where)}: "${String(n.original)}" is not allowed; use a variable such as {{name}} or {{fields.region}}`);
      return null;
    }
    return (n.parts as string[]).join('.');
  };
  const walk = (nodes: Node[] | undefined) => {
    for (const n of nodes ?? []) {
      switch (n.type) {
        case 'ContentStatement':
        case 'CommentStatement':
          break;
        case 'MustacheStatement': {
          const params = (n.params as Node[]) ?? [];
          const hash = n.hash as { pairs?: unknown[] } | undefined;
          if (params.length || hash?.pairs?.length) {
            errors.push(`line ${line(n)}: "${String((n.path as Node).original)}" is used as a helper; only variables, {{#if}} and {{#unless}} are allowed`);
            break;
          }
          const p = path(n.path as Node, n);
          if (p) variables.add(p);
          break;
        }
        case 'BlockStatement': {
          const name = String((n.path as Node).original);
          const params = (n.params as Node[]) ?? [];
          if (!BLOCK_HELPERS.has(name) || params.length !== 1) {
            errors.push(`line ${line(n)}: {{#${name}}} is not allowed; use {{#if variable}} or {{#unless variable}}`);
            break;
          }
          const p = path(params[0], n);
          if (p) variables.add(p);
          walk(((n.program as Node | undefined)?.body as Node[]) ?? []);
          walk(((n.inverse as Node | undefined)?.body as Node[]) ?? []);
          break;
        }
        case 'PartialStatement':
        case 'PartialBlockStatement':
        case 'DecoratorBlock':
        case 'Decorator':
          errors.push(`line ${line(n)}: partials and decorators are not allowed`);
          break;
        default:
          errors.push(`line ${line(n)}: ${n.type} is not allowed`);
      }
    }
  };
  walk(ast.body as Node[]);
  return { errors, variables: [...variables] };
}

/** Variables a template may use, given the custom contact field keys. */
export function knownVariables(fieldKeys: Iterable<string>): Set<string> {
  return new Set<string>([...BUILT_IN_VARIABLES, ...[...fieldKeys].map((k) => `fields.${k}`)]);
}

/** The closest known name to a misspelt one (edit distance ≤ 2), for "did you mean". */
export function suggest(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}


/** What a template is rendered with. */
export interface TemplateData {
  name: string;
  language: string;
  programme: string;
  fields: Record<string, string | number>;
}

const cache = new Map<string, { source: string; fn: Handlebars.TemplateDelegate }>();
const MAX_CACHED = 2_000;

/**
 * The compiled template for `key` (e.g. "v12:es:text"), compiled on first use and kept. Approved
 * versions never change; a draft edited in place is compiled again when its source differs.
 */
export function compiled(key: string, source: string): Handlebars.TemplateDelegate {
  const hit = cache.get(key);
  if (hit && hit.source === source) return hit.fn;
  const fn = hb.compile(source, { noEscape: true, strict: false, knownHelpers: { if: true, unless: true }, knownHelpersOnly: true });
  if (!hit && cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(key, { source, fn });
  return fn;
}

/** Renders a template once, without caching (previews of drafts). */
export function renderOnce(source: string, data: TemplateData): string {
  return hb.compile(source, { noEscape: true, strict: false, knownHelpers: { if: true, unless: true }, knownHelpersOnly: true })(data).trim();
}

/** Example values for a preview without a contact: the variable's own name in brackets. */
export function placeholderData(fieldKeys: Iterable<string>, language: string, programme: string): TemplateData {
  return { name: '[name]', language, programme, fields: Object.fromEntries([...fieldKeys].map((k) => [k, `[${k}]`])) };
}
