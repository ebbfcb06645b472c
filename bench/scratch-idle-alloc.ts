import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { Fleet } from '@breakwater/gameday';
import WebSocket from 'ws';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = openSync('/work/runs/alloc-broker.log', 'w');
const port = 38556;
const child = spawn(
  process.execPath,
  [
    '--inspect=127.0.0.1:9339',
    '--conditions=source',
    '--import',
    'tsx',
    'bench/peers/breakwater-cli.ts',
    'up',
    '--mqtt-port',
    String(port),
    '--ws-port',
    '0',
    '--http-port',
    '0',
    '--data-dir',
    '/tmp/bw-idle-alloc',
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', out, out] },
);
await sleep(8000);
const n = Number(process.argv[2] ?? 15000);
const f = new Fleet({
  target: { host: '127.0.0.1', port },
  devices: n,
  idPrefix: 'i-',
  protocolVersion: 4,
  keepaliveSec: 600,
  rampPerSec: 600,
  policy: 'naive',
  sourceAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'],
  connectTimeoutMs: 30000,
});
await f.start();
await f.waitFor((s) => s.connected === s.devices, 120000);
await sleep(10000);
const list = (await (await fetch('http://127.0.0.1:9339/json/list')).json()) as {
  webSocketDebuggerUrl: string;
}[];
const ws = new WebSocket(list[0]!.webSocketDebuggerUrl);
await new Promise((r) => ws.once('open', r));
let id = 0;
const pending = new Map<number, (v: any) => void>();
ws.on('message', (d) => {
  const m = JSON.parse(String(d));
  if (m.id && pending.has(m.id)) {
    pending.get(m.id)!(m);
    pending.delete(m.id);
  }
});
const call = (method: string, params: object = {}) =>
  new Promise<any>((resolve) => {
    const i = ++id;
    pending.set(i, resolve);
    ws.send(JSON.stringify({ id: i, method, params }));
  });
await call('HeapProfiler.enable');
const r0 = await call('HeapProfiler.startSampling', {
  samplingInterval: 1024,
  includeObjectsCollectedByMinorGC: true,
  includeObjectsCollectedByMajorGC: true,
});
console.log('start', JSON.stringify(r0).slice(0, 200));
await sleep(20000);
const r = await call('HeapProfiler.stopSampling');
const prof = r.result.profile;
const byFn = new Map<string, number>();
const byStack = new Map<string, number>();
function walk(node: any, stack: string[]) {
  const fr = node.callFrame;
  const name = `${fr.functionName || '(anon)'} ${fr.url.split('/').slice(-2).join('/')}:${fr.lineNumber + 1}`;
  const st = [...stack, name];
  if (node.selfSize > 0) {
    byFn.set(name, (byFn.get(name) ?? 0) + node.selfSize);
    const k = st.slice(-5).join(' < ');
    byStack.set(k, (byStack.get(k) ?? 0) + node.selfSize);
  }
  for (const c of node.children) walk(c, st);
}
walk(prof.head, []);
const total = [...byFn.values()].reduce((a, b) => a + b, 0);
console.log('total sampled bytes in 20 s', total);
for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(String(v).padStart(10), k);
console.log('--- stacks');
for (const [k, v] of [...byStack].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(String(v).padStart(10), k);
ws.close();
await f.stop();
child.kill('SIGTERM');
