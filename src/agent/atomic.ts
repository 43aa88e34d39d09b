// Crash-safe file writes: write a temp file in the same dir, fsync it, rename over the
// target, fsync the dir. A reader sees the old content or the new, never a torn file.
// Mode defaults to 0600: everything written here lives in the agent's state dir, and
// applied/pending hold the policy document, whose spaKnock secrets open ports.

import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { randomBytes } from "node:crypto";

export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const h = await open(tmp, "wx", mode);
  try {
    await h.writeFile(data);
    await h.chmod(mode); // umask may have narrowed or widened `open`'s mode
    await h.sync();
  } catch (e) {
    await h.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await h.close();
  await rename(tmp, path);
  await fsyncDir(dir);
}
