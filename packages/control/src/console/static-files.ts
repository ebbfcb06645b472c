/**
 * The console's built files (packages/console/dist: index.html + assets/), read once at start and
 * served from memory, gzipped ahead of time. A handful of small files: no static-file plugin.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface StaticFile {
  body: Buffer;
  gzip: Buffer;
  contentType: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** `@breakwater/console`'s dist directory, or null when the package or its build is missing. */
export function defaultConsoleDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('@breakwater/console/package.json');
    const dir = join(dirname(pkg), 'dist');
    return existsSync(join(dir, 'index.html')) ? dir : null;
  } catch {
    return null;
  }
}

/** Path below the dist dir (`index.html`, `assets/app.js`) → file. */
export function loadStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (sub: string) => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub === '' ? name : `${sub}/${name}`;
      const abs = join(dir, rel);
      if (statSync(abs).isDirectory()) walk(rel);
      else {
        const body = readFileSync(abs);
        files.set(rel, {
          body,
          gzip: gzipSync(body, { level: 9 }),
          contentType: TYPES[extname(name)] ?? 'application/octet-stream',
        });
      }
    }
  };
  walk('');
  return files;
}
