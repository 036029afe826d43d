/**
 * Writes a config drive: the files in a temporary folder, then an ISO9660 image made
 * by genisoimage with Nova's options (nova/virt/configdrive.py), volume label config-2.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export const CONFIG_DRIVE_LABEL = "config-2";
export const CONFIG_DRIVE_FILE = "disk.config";

export function genisoimageArgs(output: string, sourceDir: string, publisher = "Cirrus"): string[] {
  return [
    "-o", output, "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-publisher", publisher,
    "-quiet", "-J", "-r", "-V", CONFIG_DRIVE_LABEL, sourceDir,
  ];
}

export async function writeConfigDrive(files: Map<string, Buffer>, output: string, publisher = "Cirrus"): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "cirrus-configdrive-"));
  try {
    for (const [rel, data] of files) {
      const target = path.join(tmp, rel);
      if (!target.startsWith(tmp + path.sep)) throw new Error(`config drive path ${rel} escapes the drive`);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, data);
    }
    await new Promise<void>((resolve, reject) => {
      execFile("genisoimage", genisoimageArgs(output, tmp, publisher), { timeout: 60_000 }, (err, _stdout, stderr) => {
        if (err) {
          const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
          reject(new Error(missing ? "genisoimage is not installed (apt-get install genisoimage)" : `genisoimage failed: ${String(stderr).trim() || err.message}`, { cause: err }));
        } else resolve();
      });
    });
  } catch (e) {
    await rm(output, { force: true });
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
