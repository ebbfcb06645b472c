/** Writes report.json, summary.md and report.html into a directory (created if missing). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Report } from './build.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';

export async function writeReport(
  report: Report,
  dir: string,
): Promise<{ dir: string; json: string; markdown: string; html: string }> {
  const abs = resolve(dir);
  await mkdir(abs, { recursive: true });
  const json = join(abs, 'report.json');
  const markdown = join(abs, 'summary.md');
  const html = join(abs, 'report.html');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(markdown, renderMarkdown(report));
  await writeFile(html, renderHtml(report));
  return { dir: abs, json, markdown, html };
}
