import { readFileSync } from 'node:fs';

/**
 * The process's soft limit on open files (what `ulimit -n` shows), from /proc/self/limits.
 * Returns null where that file does not exist (not Linux) or the limit is "unlimited".
 */
export function readFdLimit(limitsFile = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return null;
  }
  // "Max open files            20000                20000                files"
  const match = /^Max open files\s+(\S+)/m.exec(text);
  if (!match) return null;
  const soft = Number(match[1]);
  return Number.isSafeInteger(soft) ? soft : null;
}

/**
 * The reboot-storm incident ended when the broker hit its FD limit (DESIGN.md §1): warn at start
 * when the limit cannot hold the configured connection capacity plus 10 % headroom (storage,
 * HTTP, log files, sockets still closing). Returns the warning, or null when the limit is fine or
 * no capacity is configured.
 */
export function fdLimitWarning(fdLimit: number | null, maxConnections: number | null): string | null {
  if (fdLimit === null || maxConnections === null) return null;
  const needed = Math.ceil(maxConnections * 1.1);
  if (fdLimit >= needed) return null;
  return (
    `open-file limit (ulimit -n) is ${fdLimit}, below the configured ${maxConnections} connections ` +
    `+ 10 % headroom (${needed}); raise it (e.g. ulimit -n ${needed} or LimitNOFILE=${needed}) ` +
    'or lower listeners[].maxConnections'
  );
}
