/**
 * Replays fuzz cases one by one against a fresh broker and prints the plan, the bytes and the
 * findings: `node --conditions=source --import tsx bench/fuzz/replay.ts <seed> <case> [<case> …]`.
 */
import { Fuzzer, planCase } from '../../packages/broker/test/fuzz/harness.js';

const [seed, ...cases] = process.argv.slice(2).map(Number);
const f = new Fuzzer(100);
await f.start();
for (const index of cases) {
  const p = planCase(seed!, index!, 'fz');
  console.log(
    `case ${index}: ${p.kind} ${p.mutation} v${p.v} [${p.names.join(', ')}] mutated at ${p.mutatedAt}`,
  );
  for (const b of p.packets) console.log(`  ${b.toString('hex').slice(0, 240)}`);
  const before = f.findings.length;
  await f.runCase(seed!, index!);
  for (const x of f.findings.slice(before)) console.log(`  FINDING ${x.kind}: ${x.detail}`);
}
await f.checkBatch(seed!, 0);
for (const x of f.findings) if (x.caseIndex === -1) console.log(`  BATCH ${x.kind}: ${x.detail}`);
await f.stop();
process.exit(0);
