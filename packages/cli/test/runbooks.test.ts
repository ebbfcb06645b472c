/**
 * The runbooks (repository root `runbooks/`) are executable documentation: each has the five
 * sections, every alert rule and incident type has one, and every `breakwater …` command they
 * name exists in this CLI with the subcommands, options, arguments and required options used.
 * The command tree comes from the real program `main()` builds (commander), captured before it
 * parses anything.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { builtinRules } from '@breakwater/control';
import { Command } from 'commander';
import { main } from '../src/index.js';

const RUNBOOKS = fileURLToPath(new URL('../../../runbooks/', import.meta.url));
const SECTIONS = ['Confirm', 'Contain', 'Communicate', 'Escalate', 'Debug'];
const INCIDENT_TYPES = ['bad-firmware-push', 'mass-disconnect', 'security', 'data-quality', 'capacity-cost'];

/** The `breakwater` command tree, exactly as main() builds it. */
async function program(): Promise<Command> {
  const original = Command.prototype.parseAsync;
  let captured: Command | null = null;
  Command.prototype.parseAsync = function (this: Command) {
    captured = this;
    return Promise.resolve(this);
  };
  try {
    await main(['node', 'breakwater'], { stdout: new PassThrough(), stderr: new PassThrough() });
  } finally {
    Command.prototype.parseAsync = original;
  }
  assert.ok(captured, 'main() built a program');
  return captured;
}

/** Shell-like words: "double" and 'single' quotes group. */
function words(command: string): string[] {
  const out: string[] = [];
  for (const m of command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** Why `command` is not a valid invocation of `root`, or null when it is. */
function check(root: Command, command: string): string | null {
  const [head, ...rest] = words(command);
  if (head !== 'breakwater') return 'does not start with breakwater';
  let cmd = root;
  let i = 0;
  while (i < rest.length && cmd.commands.length > 0) {
    const sub = cmd.commands.find((c) => c.name() === rest[i] || c.aliases().includes(rest[i]!));
    if (!sub)
      return `"${rest[i]}" is not a subcommand of "${cmd.name()}" (${cmd.commands.map((c) => c.name()).join(', ')})`;
    cmd = sub;
    i++;
  }
  if (cmd === root) return 'names no command';
  if (cmd.commands.length > 0)
    return `"${cmd.name()}" needs a subcommand (${cmd.commands.map((c) => c.name()).join(', ')})`;
  const positional: string[] = [];
  const given = new Set<string>();
  for (; i < rest.length; i++) {
    const word = rest[i]!;
    if (!word.startsWith('--')) {
      positional.push(word);
      continue;
    }
    const flag = word.split('=')[0]!;
    const option = cmd.options.find((o) => o.long === flag || o.short === flag);
    if (!option) return `${cmd.name()} has no option ${flag}`;
    given.add(option.attributeName());
    if ((option.required || option.optional) && !word.includes('=')) i++;
  }
  for (const o of cmd.options) {
    if (o.mandatory && !given.has(o.attributeName())) return `${cmd.name()} needs ${o.long}`;
  }
  const args = cmd.registeredArguments;
  const required = args.filter((a) => a.required).length;
  const variadic = args.some((a) => a.variadic);
  if (positional.length < required)
    return `${cmd.name()} needs ${required} argument(s), got ${positional.length}`;
  if (!variadic && positional.length > args.length) {
    return `${cmd.name()} takes ${args.length} argument(s), got ${positional.length}: ${positional.join(' ')}`;
  }
  return null;
}

function runbooks(): Array<{ slug: string; text: string }> {
  return readdirSync(RUNBOOKS)
    .filter((f) => f.endsWith('.md') && f !== 'README.md')
    .map((f) => ({ slug: f.slice(0, -3), text: readFileSync(join(RUNBOOKS, f), 'utf8') }));
}

describe('runbooks', () => {
  it('exist for every incident type, every alert rule, and the two specific failures', () => {
    const slugs = new Set(runbooks().map((r) => r.slug));
    for (const slug of [...INCIDENT_TYPES, 'auth-failing-fleet-wide', 'socket-fd-exhaustion']) {
      assert.ok(slugs.has(slug), `runbooks/${slug}.md`);
    }
    for (const rule of Object.values(builtinRules) as Array<{ id: string; runbook: string }>) {
      assert.ok(slugs.has(rule.runbook), `rule ${rule.id} links runbooks/${rule.runbook}.md`);
    }
  });

  it('each has Confirm, Contain, Communicate, Escalate, Debug in that order', () => {
    for (const { slug, text } of runbooks()) {
      const sections = [...text.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim());
      assert.deepEqual(sections, SECTIONS, slug);
      assert.match(text, /^---\ntitle: .+\nincidentTypes: .+\nsummary: .+\n---\n/, `${slug}: front matter`);
    }
  });

  it('every breakwater command they use is a real command of the CLI', async () => {
    const root = await program();
    let checked = 0;
    const problems: string[] = [];
    for (const { slug, text } of runbooks()) {
      for (const m of text.matchAll(/`(breakwater [^`]+)`/g)) {
        checked++;
        const why = check(root, m[1]!);
        if (why !== null) problems.push(`${slug}: \`${m[1]}\`: ${why}`);
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(checked >= 40, `checked ${checked} commands`);
  });

  it('the checker itself rejects what does not exist', async () => {
    const root = await program();
    assert.equal(check(root, 'breakwater incident ack INC-1 --commander alice'), null);
    assert.match(check(root, 'breakwater incident acknowledge 1')!, /not a subcommand/);
    assert.match(check(root, 'breakwater incident ack 1 --force')!, /no option --force/);
    assert.match(check(root, 'breakwater listener bypass-authn tcp --ttl 30m')!, /needs --reason/);
    assert.match(check(root, 'breakwater incident show')!, /needs 1 argument/);
    assert.match(check(root, 'breakwater listener')!, /needs a subcommand/);
  });

  it('the auth runbook carries the bypass drill', () => {
    const text = readFileSync(join(RUNBOOKS, 'auth-failing-fleet-wide.md'), 'utf8');
    for (const needle of [
      '*When to bypass:*',
      '*How:*',
      '*Confirm reconnection:*',
      '*When to restore:*',
      'breakwater listener bypass-authn tcp --ttl 30m --reason',
      'breakwater listener restore-authn tcp',
    ]) {
      assert.ok(text.includes(needle), needle);
    }
  });
});
