/** What a benchmark reads from /proc: of a child process, and of the disk it writes to. */
import { readFileSync, statSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** CPU time the process used so far (utime, stime). */
export function cpuSeconds(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After the command name, which may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK };
}

/** Resident memory now (VmRSS) and at its peak (VmHWM). */
export function memoryMb(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

export interface DiskStats {
  /** Time the device had a request in flight (io_ticks). */
  busyMs: number;
  /** Cache flushes completed: an fdatasync or an O_DSYNC write costs at least one. */
  flushes: number;
}

/** The block device holding `path` (whole-disk statistics of /proc/diskstats), or undefined when it is not listed there. */
export function diskStats(path: string): DiskStats | undefined {
  const dev = statSync(path).dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) !== major || Number(f[1]) !== minor) continue;
    // After major, minor and name: io_ticks is field 10 of the stats, flushes completed field 16 (Linux 5.5+).
    return { busyMs: Number(f[12]), flushes: Number(f[18] ?? 0) };
  }
  return undefined;
}
