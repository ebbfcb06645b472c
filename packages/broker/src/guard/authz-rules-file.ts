import { type FSWatcher, mkdirSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import {
  type AuthzRule,
  formatRules,
  type ParsedRule,
  parseRulesText,
  RulesTextError,
} from './authz-rules.js';

/**
 * Where the rules file lives unless `guard.authz.rulesFile` says otherwise: a directory of its own,
 * because the watch is on the directory and the data dir itself sees a write per storage flush
 * (SQLite WAL, audit log) — each would wake the watcher.
 */
export function defaultRulesFile(dataDir: string): string {
  return join(dataDir, 'authz', 'authz.rules');
}

/** The last problem with the rules file; the rules in force are the last good ones. */
export interface RulesFileError {
  /** 1-based line, or null when the file as a whole is the problem (unreadable, missing). */
  line: number | null;
  message: string;
  at: number;
}

export interface RulesFileEvents {
  /** A new, valid rule set (also on the first load). */
  loaded(rules: readonly ParsedRule[]): void;
  /** The file changed but could not be used: the previous rules stay in force. */
  failed(error: RulesFileError): void;
}

/**
 * The live rules file (issue 13): one rule a line (authz-rules.ts), reloaded when it changes — an
 * fs.watch on its directory (editors and `mv` replace the file, which a watch on the file itself
 * would lose) and a debounce, so a save that is several writes is read once. A file that does not
 * parse keeps the rules in force; the error names the line. The API writes it atomically (temp
 * file + rename), so the watcher never reads half a file.
 *
 * One watcher and at most one timer for the whole broker.
 */
export class AuthzRulesFile {
  readonly path: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #debounceMs: number;
  readonly #events: RulesFileEvents;
  #watcher: FSWatcher | null = null;
  #timer: TimerHandle | null = null;
  /** Text of the rules in force, so a change event for the same content does nothing. */
  #lastText: string | null = null;
  #lastRules: readonly ParsedRule[] = [];
  #error: RulesFileError | null = null;
  #closed = false;

  constructor(
    path: string,
    o: { clock: Clock; logger: Logger; debounceMs: number; events: RulesFileEvents },
  ) {
    this.path = path;
    this.#clock = o.clock;
    this.#logger = o.logger;
    this.#debounceMs = o.debounceMs;
    this.#events = o.events;
  }

  get error(): RulesFileError | null {
    return this.#error;
  }

  /**
   * Reads the file now. At start a missing file means no live rules; later (`initial` false) it
   * is an error and the rules in force stay: an editor may be between unlink and rename.
   */
  load(initial = false): boolean {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && initial) {
        this.#apply('', []);
        return true;
      }
      this.#fail(null, `cannot read ${this.path} (${code ?? String(err)})`);
      return false;
    }
    if (text === this.#lastText) {
      // Back to the rules in force (a bad edit undone): clear the error.
      if (this.#error !== null) this.#apply(text, this.#lastRules);
      return true;
    }
    let rules: ParsedRule[];
    try {
      rules = parseRulesText(text);
    } catch (err) {
      if (!(err instanceof RulesTextError)) throw err;
      this.#fail(err.line, `line ${err.line}: ${err.detail}`);
      return false;
    }
    this.#apply(text, rules);
    return true;
  }

  /** Starts watching (no-op when the directory cannot be watched: logged, rules stay static). */
  watch(): void {
    if (this.#watcher !== null || this.#closed) return;
    const name = basename(this.path);
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      // persistent: false — the watch must not keep a stopping process alive.
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.#schedule();
      });
      this.#watcher.on('error', (err) =>
        this.#logger.error({ err, path: this.path }, 'rules file watch failed'),
      );
    } catch (err) {
      this.#logger.warn(
        { err, path: this.path },
        'rules file cannot be watched; reload needs a restart or the API',
      );
    }
  }

  /**
   * Replaces the file's rules (the API): written to a temp file and renamed over, then applied at
   * once (not waiting for the watcher). Comments in the old file are not kept.
   */
  write(rules: readonly AuthzRule[], header: string): readonly ParsedRule[] {
    const text = `${header
      .split('\n')
      .map((l) => `# ${l}`.trimEnd())
      .join('\n')}\n${formatRules(rules)}`;
    const parsed = parseRulesText(text);
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o640 });
    renameSync(tmp, this.path);
    this.#apply(text, parsed);
    return parsed;
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      if (!this.#closed) this.load(false);
    }, this.#debounceMs);
  }

  #apply(text: string, rules: readonly ParsedRule[]): void {
    this.#lastText = text;
    this.#lastRules = rules;
    this.#error = null;
    this.#events.loaded(rules);
  }

  #fail(line: number | null, message: string): void {
    this.#error = { line, message, at: this.#clock.now() };
    this.#logger.error(
      { path: this.path, line },
      `authorization rules file not loaded, previous rules stay in force: ${message}`,
    );
    this.#events.failed(this.#error);
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }
}
