/**
 * The host-local image cache, as Nova's `_base` folder: one base file per image, named
 * sha1(image id), fetched from the API over HTTP with the agent's own credential.
 *
 * - A download goes to a temporary file and becomes the base only after its size, md5
 *   (Glance's `checksum`) and sha256 (`os_hash_value`) match what the spawn job says:
 *   a corrupt or truncated download never becomes a base.
 * - Concurrent requests for one image share one download (an in-flight promise per image).
 * - Every use touches the base's mtime; `cleanup(maxAgeSec)` removes bases unused for
 *   longer than that and not backing any instance disk under `instancesPath`.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { imageHasher } from "../common/image-hasher.js";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { ImageSnapshot } from "../common/messages.js";

export interface ImageCacheOptions {
  /** Folder holding the bases (Nova's $instances_path/_base). */
  cachePath: string;
  /** API root, e.g. http://127.0.0.1:8774; the file is `${apiUrl}/v2/images/{id}/file`. */
  apiUrl: string;
  token: string;
  /** Instance folders whose `disk` overlays keep their backing bases alive. */
  instancesPath?: string;
  /** A download that takes longer than this is abandoned (default 30 minutes). */
  downloadTimeoutMs?: number;
}

const PART_SUFFIX = ".part";

export class ImageDownloadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ImageDownloadError";
  }
}

export function baseName(imageId: string): string {
  return createHash("sha1").update(imageId).digest("hex");
}

/**
 * The backing file named in a qcow2 header (offset 8: u64 backing_file_offset, offset 16:
 * u32 backing_file_size), or null for a file that is not qcow2 or has no backing file.
 */
export async function qcow2BackingFile(file: string): Promise<string | null> {
  let fh;
  try {
    fh = await open(file, "r");
  } catch {
    return null;
  }
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await fh.read(header, 0, 20, 0);
    if (bytesRead < 20 || header.readUInt32BE(0) !== 0x514649fb) return null; // "QFI\xfb"
    const offset = Number(header.readBigUInt64BE(8));
    const size = header.readUInt32BE(16);
    if (offset === 0 || size === 0 || size > 4096) return null;
    const name = Buffer.alloc(size);
    await fh.read(name, 0, size, offset);
    const backing = name.toString("utf8");
    return path.isAbsolute(backing) ? backing : path.resolve(path.dirname(file), backing);
  } finally {
    await fh.close();
  }
}

export class ImageCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** Completed downloads since start (for tests and logs). */
  downloads = 0;

  constructor(private readonly opts: ImageCacheOptions) {}

  get cachePath(): string {
    return this.opts.cachePath;
  }

  basePath(imageId: string): string {
    return path.join(this.opts.cachePath, baseName(imageId));
  }

  /** The path of the image's base, downloading it first when it is not cached. */
  fetch(image: ImageSnapshot): Promise<string> {
    const running = this.inflight.get(image.id);
    if (running) return running;
    const p = this.ensure(image).finally(() => this.inflight.delete(image.id));
    this.inflight.set(image.id, p);
    return p;
  }

  private async ensure(image: ImageSnapshot): Promise<string> {
    const base = this.basePath(image.id);
    const existing = await stat(base).catch(() => null);
    if (existing) {
      if (image.size !== null && existing.size !== image.size) {
        // The image was replaced or the base damaged: never boot from it.
        await rm(base, { force: true });
      } else {
        await touch(base);
        return base;
      }
    }
    await mkdir(this.opts.cachePath, { recursive: true });
    const part = `${base}.${process.pid}.${randomBytes(4).toString("hex")}${PART_SUFFIX}`;
    try {
      await this.download(image, part);
      await rename(part, base);
    } catch (e) {
      await rm(part, { force: true });
      throw e;
    }
    this.downloads++;
    return base;
  }

  private async download(image: ImageSnapshot, target: string): Promise<void> {
    const url = `${this.opts.apiUrl}/v2/images/${encodeURIComponent(image.id)}/file`;
    const signal = AbortSignal.timeout(this.opts.downloadTimeoutMs ?? 30 * 60_000);
    let res: Response;
    try {
      res = await fetch(url, { headers: { "x-auth-token": this.opts.token, accept: "application/octet-stream" }, signal });
    } catch (e) {
      throw new ImageDownloadError(`downloading image ${image.id} from ${url} failed: ${errorText(e)}`, { cause: e });
    }
    if (res.status === 204 || !res.body) {
      throw new ImageDownloadError(`image ${image.id} has no data to download (HTTP ${res.status})`);
    }
    if (res.status !== 200) {
      const text = (await res.text().catch(() => "")).slice(0, 300);
      throw new ImageDownloadError(`downloading image ${image.id} from ${url} failed: HTTP ${res.status} ${text}`);
    }
    const hasher = imageHasher();
    try {
      await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), hasher.stream, createWriteStream(target, { flags: "wx" }));
    } catch (e) {
      throw new ImageDownloadError(`downloading image ${image.id} was interrupted after ${hasher.size()} bytes: ${errorText(e)}`, { cause: e });
    }
    const { size, md5: gotMd5, sha256: gotSha } = hasher.digest();
    const announced = res.headers.get("content-length");
    const problems: string[] = [];
    if (announced !== null && Number(announced) !== size) problems.push(`got ${size} of ${announced} bytes (truncated)`);
    if (image.size !== null && image.size !== size) problems.push(`size ${size} differs from the image's ${image.size}`);
    if (image.checksum && image.checksum !== gotMd5) problems.push(`md5 ${gotMd5} differs from the image's checksum ${image.checksum}`);
    if (image.os_hash_value && image.os_hash_value !== gotSha) {
      problems.push(`sha256 ${gotSha} differs from the image's os_hash_value ${image.os_hash_value}`);
    }
    if (problems.length > 0) {
      throw new ImageDownloadError(`the download of image ${image.id} is corrupt and was discarded: ${problems.join("; ")}`);
    }
  }

  /** Base files that back an instance disk under instancesPath right now. */
  private async basesInUse(): Promise<Set<string>> {
    const used = new Set<string>();
    if (!this.opts.instancesPath) return used;
    const entries = await readdir(this.opts.instancesPath).catch(() => [] as string[]);
    for (const entry of entries) {
      const backing = await qcow2BackingFile(path.join(this.opts.instancesPath, entry, "disk"));
      if (backing) used.add(path.resolve(backing));
    }
    return used;
  }

  /**
   * Removes bases unused for longer than maxAgeSec that back no instance disk, and
   * leftover partial downloads of that age. Returns the removed paths.
   */
  async cleanup(maxAgeSec: number, now = Date.now()): Promise<string[]> {
    const entries = await readdir(this.opts.cachePath).catch(() => [] as string[]);
    const inUse = await this.basesInUse();
    const downloading = new Set([...this.inflight.keys()].map((id) => baseName(id)));
    const removed: string[] = [];
    for (const entry of entries) {
      const file = path.join(this.opts.cachePath, entry);
      const isPart = entry.endsWith(PART_SUFFIX);
      if (!isPart && !/^[0-9a-f]{40}$/.test(entry)) continue; // not ours
      if (downloading.has(entry.slice(0, 40))) continue;
      if (inUse.has(file)) continue;
      const st = await stat(file).catch(() => null);
      if (!st || !st.isFile()) continue;
      if (now - st.mtimeMs <= maxAgeSec * 1000) continue;
      await rm(file, { force: true });
      removed.push(file);
    }
    return removed;
  }
}

async function touch(file: string): Promise<void> {
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.cause instanceof Error ? `${e.message} (${e.cause.message})` : e.message;
  return String(e);
}
