import { Duplex } from 'node:stream';

/**
 * Two connected in-memory duplex streams: what one writes, the other reads. Node 20 has no
 * `stream.duplexPair` (added in 22.6), so here is a small one for protocol tests without sockets.
 */
export function duplexPair(): [Duplex, Duplex] {
  let a: Duplex;
  let b: Duplex;
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(err, cb) {
        const p = peer();
        if (!p.destroyed) p.push(null);
        cb(err);
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}
