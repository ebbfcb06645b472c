import { ConfigSchema } from './schema.js';

interface Node {
  type?: string;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  properties?: Record<string, Node>;
  patternProperties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  anyOf?: Node[];
  const?: unknown;
}

/**
 * The configuration reference as a markdown table, rendered from the schema so the docs cannot
 * drift from what the validator accepts. The README embeds it between markers; a test checks
 * that the embedded copy is fresh (`npm run docs:config` rewrites it).
 */
export function renderConfigReference(): string {
  const rows: string[] = ['| key | type | default | description |', '|---|---|---|---|'];
  walk(ConfigSchema as unknown as Node, '', rows);
  return rows.join('\n');
}

function walk(node: Node, prefix: string, rows: string[]): void {
  const required = new Set(node.required ?? []);
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (child.type === 'object' && child.properties) {
      walk(child, path, rows);
      continue;
    }
    const map = mapValue(child);
    const isList = child.type === 'array' && child.items?.type === 'object';
    let defaultCell = '—';
    if (isList) defaultCell = 'see description';
    else if (child.default !== undefined) defaultCell = `\`${JSON.stringify(child.default)}\``;
    else if (required.has(key)) defaultCell = 'required';
    rows.push(`| \`${path}\` | ${typeOf(child)} | ${defaultCell} | ${escapeCell(child.description ?? '')} |`);
    if (isList) walk(child.items!, `${path}[]`, rows);
    // A map keyed by a name the operator picks (listeners, authenticators): its value's keys are
    // listed under `<name>`, so nested settings are documented, not shown as a bare `object`.
    else if (map?.properties) walk(map, `${path}.<name>`, rows);
  }
}

function mapValue(node: Node): Node | undefined {
  if (node.type !== 'object' || !node.patternProperties) return undefined;
  return Object.values(node.patternProperties)[0];
}

function typeOf(node: Node): string {
  if (node.enum) return node.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (node.const !== undefined) return `\`${JSON.stringify(node.const)}\``;
  if (node.anyOf) return node.anyOf.map(typeOf).join(' \\| ');
  if (node.type === 'array')
    return node.items && node.items.type !== 'object' ? `list of ${typeOf(node.items)}` : 'list';
  const map = mapValue(node);
  if (map) return `map of name → ${map.properties ? 'object (keys below)' : typeOf(map)}`;
  let type = node.type ?? 'any';
  if (node.minimum !== undefined || node.maximum !== undefined) {
    type += ` ${node.minimum ?? ''}…${node.maximum ?? ''}`;
  }
  return type;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

const START = /<!-- config-reference:start[^>]*-->\n/;
const END = '<!-- config-reference:end -->';

/** Replaces the table between the README's config-reference markers with a fresh rendering. */
export function embedConfigReference(markdown: string): string {
  const start = START.exec(markdown);
  const end = markdown.indexOf(END);
  if (!start || end < start.index) throw new Error('config-reference markers not found');
  const from = start.index + start[0].length;
  return `${markdown.slice(0, from)}${renderConfigReference()}\n${markdown.slice(end)}`;
}
