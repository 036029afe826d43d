/**
 * Instance disks: a qcow2 overlay on a cached base image, as Nova does with
 * use_cow_images, and removal of an instance's folder.
 */
import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import path from "node:path";

const GiB = 1024 ** 3;

export interface OverlayOptions {
  base: string;
  baseFormat: "qcow2" | "raw";
  path: string;
  /** Requested virtual size; used only when it is larger than the base's. */
  sizeGiB?: number;
}

function qemuImg(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("qemu-img", args, { encoding: "utf8", timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        const detail = stderr.trim() || err.message;
        reject(new Error(`qemu-img ${args[0]} failed: ${detail}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

export async function virtualSize(image: string, format: string): Promise<number> {
  const out = await qemuImg(["info", "--output=json", "-f", format, image]);
  const size = (JSON.parse(out) as { "virtual-size"?: unknown })["virtual-size"];
  if (typeof size !== "number") throw new Error(`qemu-img info gave no virtual size for ${image}`);
  return size;
}

export async function createOverlay(opts: OverlayOptions): Promise<void> {
  // A relative backing path would be resolved against the overlay's folder, not ours.
  const base = path.resolve(opts.base);
  const args = ["create", "-f", "qcow2", "-F", opts.baseFormat, "-b", base, opts.path];
  if (opts.sizeGiB !== undefined && opts.sizeGiB > 0) {
    // Never shrink: a disk smaller than its base would cut the guest's file system.
    if (opts.sizeGiB * GiB > (await virtualSize(base, opts.baseFormat))) args.push(`${opts.sizeGiB}G`);
  }
  await qemuImg(args);
}

export async function removeInstanceDir(dir: string): Promise<void> {
  const resolved = path.resolve(dir);
  if (resolved === path.parse(resolved).root) throw new Error(`refusing to remove ${resolved}`);
  await rm(resolved, { recursive: true, force: true });
}

/** Grows a qcow2 image to sizeGiB; does nothing when it is already that large (never shrinks). */
export async function growImage(image: string, sizeGiB: number): Promise<boolean> {
  if (!(sizeGiB > 0) || sizeGiB * GiB <= (await virtualSize(image, "qcow2"))) return false;
  await qemuImg(["resize", "-f", "qcow2", image, `${sizeGiB}G`]);
  return true;
}

/**
 * Writes a standalone qcow2 copy of `source` (its backing chain flattened in) to `destination`.
 * `forceShare` (-U) reads an image a running QEMU holds locked.
 */
export async function convertToQcow2(source: string, sourceFormat: string, destination: string, forceShare: boolean): Promise<void> {
  const args = ["convert", ...(forceShare ? ["-U"] : []), "-f", sourceFormat, "-O", "qcow2", source, destination];
  await new Promise<void>((resolve, reject) => {
    // A large disk takes longer than qemu-img's usual minute.
    execFile("qemu-img", args, { encoding: "utf8", timeout: 3_600_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`qemu-img convert failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve();
    });
  });
}
