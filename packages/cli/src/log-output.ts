import type { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * The process logger. JSON lines for machines (a pipe, a file, journald, a log shipper); on a
 * terminal, where a person reads the first warnings of a new setup, one coloured line per event
 * (issue 12). pino-pretty runs in-process and synchronously here, not as a worker transport:
 * terminal volume is low, and a worker thread would cost memory on every `breakwater up`.
 */
export function createLogger(
  level: string,
  format: LogFormat,
  stream: Writable & { isTTY?: boolean } = process.stdout,
): Logger {
  const human = format === 'pretty' || (format === 'auto' && stream.isTTY === true);
  if (!human) return pino({ level, base: { pid: process.pid } }, stream);
  return pino(
    { level, base: null },
    pretty({
      destination: stream,
      sync: true,
      colorize: stream.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
    }),
  );
}
