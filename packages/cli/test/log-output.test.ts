import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, type LogFormat } from '../src/log-output.js';

function capture(format: LogFormat, isTTY: boolean): string {
  const out = Object.assign(new PassThrough(), { isTTY });
  let text = '';
  out.on('data', (c: Buffer) => {
    text += c.toString('utf8');
  });
  const logger = createLogger('info', format, out);
  logger.warn({ listener: 'mqtt' }, 'no guard configured');
  logger.debug('below the level');
  logger.flush();
  return text;
}

describe('createLogger', () => {
  it('auto: JSON lines when the output is not a terminal', () => {
    const line = JSON.parse(capture('auto', false).trim()) as Record<string, unknown>;
    assert.equal(line.msg, 'no guard configured');
    assert.equal(line.level, 40);
    assert.equal(line.listener, 'mqtt');
  });

  it('auto: one human-readable line on a terminal, with the level name and the fields', () => {
    const text = capture('auto', true);
    assert.equal(text.trim().split('\n').length, 1);
    assert.throws(() => JSON.parse(text));
    assert.match(text, /WARN/);
    assert.match(text, /no guard configured/);
    assert.match(text, /listener.*mqtt/);
    assert.doesNotMatch(text, /below the level/);
  });

  it('an explicit format wins over the terminal check', () => {
    assert.equal((JSON.parse(capture('json', true).trim()) as { msg: string }).msg, 'no guard configured');
    assert.throws(() => JSON.parse(capture('pretty', false)));
  });
});
