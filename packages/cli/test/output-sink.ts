import { Writable } from 'node:stream';

/** Collects what a CLI command writes to its stdout or stderr, for assertions. */
export class OutputSink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += String(chunk);
    callback();
  }
}
