/** A pass-through stream that measures image bytes on their way: size, md5 (Glance's checksum) and sha256. */
import { createHash } from "node:crypto";
import { Transform } from "node:stream";

export interface ImageDigest {
  size: number;
  md5: string;
  sha256: string;
}

export function imageHasher(): { stream: Transform; size(): number; digest(): ImageDigest } {
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      md5.update(chunk);
      sha256.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, size: () => size, digest: () => ({ size, md5: md5.digest("hex"), sha256: sha256.digest("hex") }) };
}
