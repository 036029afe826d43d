import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ed25519Blob, fingerprintOf, generateKeyPair, parsePublicKey, rsaBlob } from "../../api/routes/keypair-keys.js";

// A well-known test key (Nova's own unit tests import this one) and its Nova fingerprint.
const NOVA_RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDBYIznAx9D7118Q1VKGpXy2HDiKyUTM8XcUuhQpo0srqb9rboUp4a9NmCwpWpeElDLuva707GOUnfaBAvHBwsRXyxHJjRaI6YQj2oLJwqvaSaWUbyT1vtryRqy6J3TecN0WINY71f4uymiMZP0wby4bKBcYnac8KiCIlvkEl0ETjkOGUq8OyWRmn7ljj5SESEUdBP0JnuTFKddWTU/wD6wydeJaUhBTqOlHn0kX1GyqoNTE1UEhcM5ZRWgfUZfTjVyDF2kGj3vJLCJtJ8LoGcj7YaN4uPg1rBle+izwE/tLonRrds+cev8p6krSSrxWOwBbHkXa6OciiJDvkRzJXzf Generated-by-Nova";

const md5Colons = (b: Buffer) => createHash("md5").update(b).digest("hex").match(/../g)!.join(":");

describe("parsePublicKey", () => {
  it("parses an OpenSSH RSA key with its comment", () => {
    const k = parsePublicKey(NOVA_RSA)!;
    expect(k.type).toBe("ssh-rsa");
    expect(k.comment).toBe("Generated-by-Nova");
    expect(k.blob.equals(Buffer.from(NOVA_RSA.split(" ")[1]!, "base64"))).toBe(true);
  });

  it("accepts ed25519 and ecdsa keys made by Node's crypto", () => {
    const ed = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }) as { x: string };
    const edLine = `ssh-ed25519 ${ed25519Blob(Buffer.from(ed.x, "base64url")).toString("base64")} me@host`;
    expect(parsePublicKey(edLine)?.type).toBe("ssh-ed25519");

    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" }) as { x: string; y: string };
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(ec.x, "base64url"), Buffer.from(ec.y, "base64url")]);
    const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const blob = Buffer.concat([str(Buffer.from("ecdsa-sha2-nistp256")), str(Buffer.from("nistp256")), str(point)]);
    expect(parsePublicKey(`ecdsa-sha2-nistp256 ${blob.toString("base64")}`)?.type).toBe("ecdsa-sha2-nistp256");
  });

  it.each([
    ["empty", ""],
    ["garbage", "not a key"],
    ["unknown type", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"],
    ["type without body", "ssh-rsa"],
    ["bad base64", "ssh-rsa !!!notbase64!!!"],
    ["type mismatch inside the blob", `ssh-ed25519 ${NOVA_RSA.split(" ")[1]}`],
    ["truncated blob", `ssh-rsa ${Buffer.from(NOVA_RSA.split(" ")[1]!, "base64").subarray(0, 40).toString("base64")}`],
    ["ed25519 with a short key", `ssh-ed25519 ${ed25519Blob(Buffer.alloc(16, 1)).toString("base64")}`],
    ["a PEM key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"],
  ])("refuses %s", (_label, text) => {
    expect(parsePublicKey(text)).toBeNull();
  });
});

describe("fingerprintOf", () => {
  it("is the MD5 of the decoded blob as colon-separated hex, as Nova computes it", () => {
    const blob = Buffer.from(NOVA_RSA.split(" ")[1]!, "base64");
    expect(fingerprintOf(blob)).toBe(md5Colons(blob));
    expect(fingerprintOf(blob)).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    expect(fingerprintOf(Buffer.from("abc"))).toBe("90:01:50:98:3c:d2:4f:b0:d6:96:3f:7d:28:e1:7f:72");
  });
});

describe("generateKeyPair", () => {
  it("returns an OpenSSH RSA public key that matches the PKCS#1 private key", () => {
    const g = generateKeyPair();
    expect(g.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(g.publicKey).toMatch(/^ssh-rsa AAAAB3NzaC1yc2E[A-Za-z0-9+/=]+ Generated-by-Nova$/);
    const parsed = parsePublicKey(g.publicKey)!;
    expect(parsed).not.toBeNull();
    expect(g.fingerprint).toBe(md5Colons(parsed.blob));
    const jwk = createPublicKey(g.privateKey).export({ format: "jwk" }) as { n: string; e: string };
    expect(rsaBlob(Buffer.from(jwk.n, "base64url"), Buffer.from(jwk.e, "base64url")).equals(parsed.blob)).toBe(true);
  });

  it("generates a different key each time", () => {
    expect(generateKeyPair().fingerprint).not.toBe(generateKeyPair().fingerprint);
  });
});
