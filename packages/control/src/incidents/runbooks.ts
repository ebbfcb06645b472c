/**
 * Runbooks: markdown files in the repository's `runbooks/` folder, one per incident type plus
 * one per specific alert. Each starts with a small front matter block:
 *
 *   ---
 *   title: Broker auth failing fleet-wide
 *   incidentTypes: security, mass-disconnect
 *   summary: Devices on a listener fail auth on reconnect and retry in a storm.
 *   ---
 *
 * and has the sections Confirm, Contain, Communicate, Escalate, Debug (`## Confirm`, …).
 * Files are read on each request: they are small, and an edited runbook is live at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The sections every runbook has, in order. */
export const RUNBOOK_SECTIONS = ['Confirm', 'Contain', 'Communicate', 'Escalate', 'Debug'] as const;

/** `<repo>/runbooks/`: src/incidents/ and dist/incidents/ are both four levels below the root. */
export const DEFAULT_RUNBOOKS_DIR = fileURLToPath(new URL('../../../../runbooks/', import.meta.url));

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;

export interface RunbookMeta {
  slug: string;
  title: string;
  incidentTypes: string[];
  summary: string;
  sections: string[];
}

export interface Runbook extends RunbookMeta {
  markdown: string;
}

export function parseRunbook(slug: string, text: string): Runbook {
  const meta: Record<string, string> = {};
  let body = text;
  const fm = /^---\n([\s\S]*?)\n---\n/.exec(text);
  if (fm) {
    for (const line of fm[1]!.split('\n')) {
      const m = /^(\w+):\s*(.*)$/.exec(line.trim());
      if (m) meta[m[1]!] = m[2]!.trim();
    }
    body = text.slice(fm[0].length);
  }
  const h1 = /^# (.+)$/m.exec(body);
  const sections = [...body.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim());
  return {
    slug,
    title: meta.title ?? h1?.[1]?.trim() ?? slug,
    incidentTypes: (meta.incidentTypes ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    summary: meta.summary ?? '',
    sections,
    markdown: body.replace(/^\n+/, ''),
  };
}

export class RunbookLibrary {
  constructor(readonly dir: string = DEFAULT_RUNBOOKS_DIR) {}

  slugs(): string[] {
    try {
      return readdirSync(this.dir)
        .filter((f) => f.endsWith('.md') && f !== 'README.md')
        .map((f) => f.slice(0, -3))
        .filter((s) => SLUG.test(s))
        .sort();
    } catch {
      return [];
    }
  }

  get(slug: string): Runbook | null {
    if (!SLUG.test(slug)) return null; // no path tricks: a slug is a plain file name
    try {
      return parseRunbook(slug, readFileSync(join(this.dir, `${slug}.md`), 'utf8'));
    } catch {
      return null;
    }
  }

  list(): RunbookMeta[] {
    return this.slugs().flatMap((slug) => {
      const r = this.get(slug);
      if (r === null) return [];
      const { markdown: _markdown, ...meta } = r;
      return [meta];
    });
  }
}

/** Where the API serves a runbook. */
export function runbookPath(slug: string): string {
  return `/api/v1/runbooks/${slug}`;
}
