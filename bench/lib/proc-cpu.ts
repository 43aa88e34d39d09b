// CPU time as /proc/self/stat counts it (fields 14-17, in USER_HZ ticks of 10 ms): this
// process's own, and that of its children already reaped (nft, spawned and waited for).
import { readFileSync } from "node:fs";

export const TICK_MS = 1000 / 100; // USER_HZ

export function procStatCpuMs(): { own: number; children: number } {
  const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return {
    own: (Number(f[11]) + Number(f[12])) * TICK_MS,
    children: (Number(f[13]) + Number(f[14])) * TICK_MS,
  };
}
