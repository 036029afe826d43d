import { execFile } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Builds (or reuses) the Linux test guest made from Debian packages; returns its path. */
export async function testGuestImage(): Promise<string> {
  const out = path.join(os.tmpdir(), "cirrus-test-guest", "guest.qcow2");
  const { stdout } = await promisify(execFile)("bash", [path.join(repoRoot, "scripts/build-test-guest.sh"), out], { timeout: 180_000 });
  return stdout.trim().split("\n").pop()!;
}
