/**
 * Micro-benchmark of authorization on the publish hot path (issue 13): Guard.authorizePublish as
 * the broker calls it per PUBLISH — a cached per-connection decision — against the rule walk it
 * saves (TopicAuthorizer.allowsPublish), with the default 5 rules and with 50 live deny rules in
 * front of them. In-process; compare runs of this file against each other.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  compileRule,
  defaultRulesFile,
  Guard,
  parseRulesText,
  resolveGuardConfig,
  TopicAuthorizer,
} from '@breakwater/broker';

function time(
  label: string,
  iterations: number,
  fn: (i: number) => unknown,
  log: (line: string) => void,
): void {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i); // warm-up for the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  log(`${label}: ${ns.toFixed(0)} ns/op (${Math.round(1e9 / ns).toLocaleString('en-US')} ops/s)`);
}

async function guardWith(liveRules: string): Promise<{ guard: Guard; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-authz-'));
  const file = defaultRulesFile(dir);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, liveRules);
  const guard = new Guard(
    { authenticators: { anonymous: { anon: {} } }, listeners: { mqtt: { authn: ['anon'] } } },
    { dataDir: dir },
  );
  const d = await guard.authenticate({
    clientId: 'dev-42',
    username: 'dev-42',
    protocolVersion: 5,
    keepalive: 60,
    clean: true,
    info: { listener: 'mqtt', transport: 'tcp', remoteAddress: '10.1.2.3' },
  });
  if (!d.ok) throw new Error('bench client refused');
  return { guard, dir };
}

export async function runAuthz(log: (line: string) => void): Promise<void> {
  const fifty = Array.from(
    { length: 50 },
    (_, i) => `deny publish devices/%c/blocked-${i}/# username=svc-${i} source=192.168.${i}.0/24\n`,
  ).join('');
  const topic = 'devices/dev-42/telemetry/temp';
  // Of the 1,024: 64 get cached, 960 are walked every time.
  const topics = Array.from({ length: 1024 }, (_, i) => `devices/dev-42/t/${i}`);
  for (const [name, rules] of [
    ['default rules (5)', ''],
    ['50 live deny rules + default rules', fifty],
  ] as const) {
    const { guard, dir } = await guardWith(rules);
    const principal = {
      clientId: 'dev-42',
      username: 'dev-42',
      superuser: false,
      listener: 'mqtt',
      source: '10.1.2.3',
    };
    const explain = guard.explainAuthz({ clientId: 'dev-42', action: 'publish', topic });
    if (!explain.allowed) throw new Error('bench topic denied');
    // The same rule list as the Guard's, walked on every call (what the cache saves).
    const listenerAuthz = resolveGuardConfig({ listeners: { mqtt: {} } }).listeners.mqtt!.authz;
    const live = parseRulesText(rules).map((p) => compileRule(p.rule, `line ${p.line}`));
    const walker = new TopicAuthorizer(listenerAuthz, live);
    // As on the wire: the decoder hands over a fresh string per PUBLISH, so its hash is computed
    // on every lookup and V8's split cache for constant strings does not help. `decode only` is
    // that cost alone, to subtract.
    const wire = Buffer.from(topic);
    const wires = topics.map((t) => Buffer.from(t));
    time(`${name}: decode only (Buffer → string, the baseline)`, 2_000_000, () => wire.toString('utf8'), log);
    time(
      `${name}: authorizePublish, cached decision`,
      2_000_000,
      () => guard.authorizePublish('dev-42', wire.toString('utf8')),
      log,
    );
    time(
      `${name}: authorizePublish, 1,024 topics round robin (only the first 64 cached)`,
      1_000_000,
      (i) => guard.authorizePublish('dev-42', wires[i & 1023]!.toString('utf8')),
      log,
    );
    time(
      `${name}: rule walk, no cache (TopicAuthorizer.allowsPublish)`,
      1_000_000,
      () => walker.allowsPublish(principal, wire.toString('utf8')),
      log,
    );
    await guard.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
