/**
 * OpenSSH public keys without a library: parse and check the wire format of the key
 * blob (RFC 4253 section 6.6, RFC 5656, RFC 8709), compute Nova's fingerprint (MD5 of
 * the decoded blob, colon-separated hex), and generate a key pair the way Nova did
 * before 2.92 (RSA 2048, private key as PKCS#1 PEM, public key "... Generated-by-Nova").
 * Pure: no I/O.
 */
import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";

export const SSH_KEY_TYPES = ["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

const EC_POINT_BYTES: Record<string, number> = { nistp256: 65, nistp384: 97, nistp521: 133 };

export interface ParsedPublicKey {
  type: SshKeyType;
  blob: Buffer;
  comment: string;
}

/** Reads the length-prefixed strings of an SSH key blob; null when the framing is wrong. */
function readStrings(blob: Buffer): Buffer[] | null {
  const out: Buffer[] = [];
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return null;
    const len = blob.readUInt32BE(at);
    at += 4;
    if (at + len > blob.length) return null;
    out.push(blob.subarray(at, at + len));
    at += len;
  }
  return out;
}

const isPositiveMpint = (b: Buffer | undefined) => b !== undefined && b.length > 0 && (b[0]! & 0x80) === 0 && b.some((x) => x !== 0);

/** The key in `ssh-rsa AAAA... comment` form, or null when it is not a well-formed rsa, ed25519 or ecdsa key. */
export function parsePublicKey(text: string): ParsedPublicKey | null {
  const parts = text.trim().split(/\s+/);
  if (parts.length < 2) return null;
  const [type, b64, ...rest] = parts as [string, string, ...string[]];
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  const blob = Buffer.from(b64, "base64");
  const fields = readStrings(blob);
  if (!fields || fields.length === 0 || fields[0]!.toString("latin1") !== type) return null;
  if (type === "ssh-rsa") {
    if (fields.length !== 3 || !isPositiveMpint(fields[1]) || !isPositiveMpint(fields[2])) return null;
    const modulusBits = (fields[2]!.length - (fields[2]![0] === 0 ? 1 : 0)) * 8;
    if (modulusBits < 512) return null;
  } else if (type === "ssh-ed25519") {
    if (fields.length !== 2 || fields[1]!.length !== 32) return null;
  } else {
    const curve = type.slice("ecdsa-sha2-".length);
    if (fields.length !== 3 || fields[1]!.toString("latin1") !== curve) return null;
    const point = fields[2]!;
    if (point.length !== EC_POINT_BYTES[curve] || point[0] !== 0x04) return null;
  }
  return { type: type as SshKeyType, blob, comment: rest.join(" ") };
}

/** Nova's fingerprint: MD5 of the decoded key blob as colon-separated hex pairs. */
export function fingerprintOf(blob: Buffer): string {
  return createHash("md5").update(blob).digest("hex").match(/../g)!.join(":");
}

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** An unsigned big-endian integer as an SSH mpint (a leading zero byte when the top bit is set). */
function mpint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const trimmed = b.subarray(i);
  return sshString(trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function rsaBlob(n: Buffer, e: Buffer): Buffer {
  return Buffer.concat([sshString(Buffer.from("ssh-rsa")), mpint(e), mpint(n)]);
}

export function ed25519Blob(key: Buffer): Buffer {
  return Buffer.concat([sshString(Buffer.from("ssh-ed25519")), sshString(key)]);
}

export interface GeneratedKeyPair {
  publicKey: string;
  privateKey: string;
  fingerprint: string;
}

/** A fresh RSA 2048 key pair, as Nova generated them. */
export function generateKeyPair(): GeneratedKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const jwk = createPublicKey(publicKey).export({ format: "jwk" }) as { n: string; e: string };
  const blob = rsaBlob(Buffer.from(jwk.n, "base64url"), Buffer.from(jwk.e, "base64url"));
  return {
    publicKey: `ssh-rsa ${blob.toString("base64")} Generated-by-Nova`,
    privateKey,
    fingerprint: fingerprintOf(blob),
  };
}
