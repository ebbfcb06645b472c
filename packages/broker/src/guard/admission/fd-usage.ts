import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

/**
 * File-descriptor usage of this process, for the FD-pressure refusal (DESIGN.md §1 "reboot storm":
 * sockets piled up until the process hit its FD limit and the whole fleet went dark).
 *
 * Linux only (/proc). Elsewhere `procFdUsage()` returns undefined and the check is skipped.
 */
export interface FdUsage {
  open: number;
  max: number;
  /**
   * `open` was counted when the previous call was made, not now (procFdUsage counts in the
   * background). The gate then adds the accepts and subtracts the closes it saw since that call.
   * Taken as "now", a count started just before a fleet-wide drop still held every old socket,
   * and the reconnecting fleet was refused for FD pressure for a whole interval (issue 11 auth
   * storm: 12,000 devices, 13,000 FDs open of 20,000, 12,734 fd_pressure refusals).
   */
  lagsOneCall?: boolean;
}

const PROC_LIMITS = '/proc/self/limits';
const PROC_FD = '/proc/self/fd';

/**
 * The soft "Max open files" limit from /proc/self/limits (Node raises the soft limit to the hard
 * one at start, so this is what the process really has). `Infinity` for "unlimited", undefined
 * when unknown. `text` is injectable for tests.
 */
export function readFdLimit(text?: string): number | undefined {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = readFileSync(PROC_LIMITS, 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined) return undefined;
  if (soft === 'unlimited') return Number.POSITIVE_INFINITY;
  const n = Number(soft);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * The number of open FDs of this process, undefined off Linux. Linux 6.2 and later report it as
 * the size of /proc/self/fd, in constant time; older kernels report 0 there, and the directory
 * is listed instead, which is O(open FDs): an array of 15,000 names at 15,000 connections.
 */
export function countOpenFds(): number | undefined {
  try {
    // The listing holds an FD of its own while it reads.
    return statFdCount() || readdirSync(PROC_FD).length - 1;
  } catch {
    return undefined;
  }
}

/** The FD count in constant time (Linux ≥ 6.2), 0 where the kernel does not report it. */
function statFdCount(): number {
  return statSync(PROC_FD).size;
}

/**
 * A cheap FD-usage reader for the gate's `fdUsage` dependency. Counting /proc/self/fd is O(open
 * FDs) — tens of milliseconds at 100k sockets — so it never runs synchronously on the connect
 * path after the first call: each call returns the count started by the previous call (or at
 * creation) and starts one asynchronous re-count in the background (`lagsOneCall`). The gate asks
 * at most every `fd.sampleIntervalMs` and adds the accepts/closes it saw since the previous ask.
 * On Linux ≥ 6.2, which counts in constant time, each call counts now instead.
 * Returns undefined off Linux.
 */
export function procFdUsage(): (() => FdUsage) | undefined {
  const max = readFdLimit();
  if (max === undefined) return undefined;
  let open: number;
  try {
    open = statFdCount();
    if (open > 0) {
      return () => {
        try {
          open = statFdCount();
        } catch {
          // Keep the previous count: /proc cannot vanish under a running process in practice.
        }
        return { open, max };
      };
    }
    open = readdirSync(PROC_FD).length;
  } catch {
    return undefined;
  }
  let counting = false;
  return () => {
    if (!counting) {
      counting = true;
      readdir(PROC_FD).then(
        (names) => {
          open = names.length;
          counting = false;
        },
        () => {
          counting = false;
        },
      );
    }
    return { open, max, lagsOneCall: true };
  };
}

/**
 * For `breakwater up`: a warning when the FD limit is below the configured connection capacity
 * plus 10 % headroom (storage, logs, admin API and refusal answers need FDs too). Undefined when
 * all is well, when max connections is unlimited (0), or when the limit cannot be read.
 */
export function fdHeadroomWarning(
  maxConnections: number,
  fdLimit: number | undefined = readFdLimit(),
): string | undefined {
  if (maxConnections <= 0 || fdLimit === undefined) return undefined;
  // Integer arithmetic: 100000 × 1.1 is 110000.00000000001 in floating point.
  const needed = maxConnections + Math.ceil(maxConnections / 10);
  if (fdLimit >= needed) return undefined;
  return (
    `the open-file limit (ulimit -n) is ${fdLimit}, below the ${maxConnections} configured max connections plus 10 % headroom (${needed}); ` +
    `raise it (e.g. LimitNOFILE=${needed} in the systemd unit, or ulimit -n ${needed}) or lower admission.global.maxConnections`
  );
}
