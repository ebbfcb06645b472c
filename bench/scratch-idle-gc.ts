import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { Fleet } from '@breakwater/gameday';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = openSync('/work/runs/trace-gc.log', 'w');
const port = 38555;
const child = spawn(
  process.execPath,
  [
    '--trace-gc',
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
    '/tmp/bw-idle-gc',
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', out, out] },
);
await sleep(8000);
const f = new Fleet({
  target: { host: '127.0.0.1', port },
  devices: 15000,
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
const lines = () => readFileSync('/work/runs/trace-gc.log', 'utf8').split('\n').length;
await sleep(20000);
const a = lines();
console.log('idle start line', a);
await sleep(60000);
console.log('idle end line', lines());
await f.stop();
child.kill('SIGTERM');
