// The structure-aware fuzzer's CI slice (issue 13): a few seconds of cases per seed against an
// in-process broker over duplex pairs (harness.ts has the oracle). Fixed seeds, so a failure
// replays; BW_FUZZ_SEED=<n> BW_FUZZ_CASES=<n> runs another slice. The long run (1e6 cases) is
// `node --conditions=source --import tsx bench/fuzz/run.ts` → bench/results/fuzz.md.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runFuzz } from './harness.js';

const seeds = process.env.BW_FUZZ_SEED ? [Number(process.env.BW_FUZZ_SEED)] : [20261206, 777];
/** A fixed count (not a time budget): the same cases run on a fast or a starved machine. */
const CASES = Number(process.env.BW_FUZZ_CASES ?? 400);

describe('structure-aware fuzzer (CI slice)', () => {
  for (const seed of seeds) {
    test(`seed ${seed}: no crash, hang, leak, lost QoS 1 message, malformed answer or wrong reaction`, async (t) => {
      const r = await runFuzz({ seed, cases: CASES, batchSize: 200 });
      t.diagnostic(
        `seed ${seed}: ${r.stats.cases} cases, ${r.stats.packets} packets in ${r.durationMs} ms; ` +
          `closed by the broker ${r.stats.closedByBroker}; reason codes ${JSON.stringify(r.stats.reasonCodes)}`,
      );
      assert.equal(r.stats.cases, CASES);
      assert.equal(r.stats.batches, Math.ceil(CASES / 200), 'a batch check after every batch');
      assert.ok(
        r.stats.canaryAcked > 0 && r.stats.canaryReceived >= r.stats.canaryAcked,
        'canary QoS 1 traffic',
      );
      assert.deepEqual(
        r.findings.map((f) => `${f.kind}: ${f.detail} (case ${f.caseIndex}, input ${f.input.slice(0, 200)})`),
        [],
        `findings (replay: BW_FUZZ_SEED=${seed})`,
      );
    });
  }
});
