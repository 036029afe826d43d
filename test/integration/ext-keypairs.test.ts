/** Keypairs at 2.1 (nova-contract 1.5) and key_name on POST /servers. */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MEMBER_P1, MEMBER_P1_OTHER_USER, admin, bootables, client, createExtApp, type ExtApp } from "./ext-support.js";

const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDBYIznAx9D7118Q1VKGpXy2HDiKyUTM8XcUuhQpo0srqb9rboUp4a9NmCwpWpeElDLuva707GOUnfaBAvHBwsRXyxHJjRaI6YQj2oLJwqvaSaWUbyT1vtryRqy6J3TecN0WINY71f4uymiMZP0wby4bKBcYnac8KiCIlvkEl0ETjkOGUq8OyWRmn7ljj5SESEUdBP0JnuTFKddWTU/wD6wydeJaUhBTqOlHn0kX1GyqoNTE1UEhcM5ZRWgfUZfTjVyDF2kGj3vJLCJtJ8LoGcj7YaN4uPg1rBle+izwE/tLonRrds+cev8p6krSSrxWOwBbHkXa6OciiJDvkRzJXzf Generated-by-Nova";
const RSA_FP = createHash("md5").update(Buffer.from(RSA.split(" ")[1]!, "base64")).digest("hex").match(/../g)!.join(":");

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
});
afterAll(async () => t?.close());

const count = async () => Number((await t.database.db("key_pairs").count<{ n: string }[]>("* as n"))[0]!.n);

describe("POST /v2.1/os-keypairs", () => {
  it("imports a public key: 200 {keypair: {name, public_key, fingerprint, user_id}} without private_key", async () => {
    const res = await admin(t).post("/v2.1/os-keypairs", { keypair: { name: "imported", public_key: RSA } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ keypair: { name: "imported", public_key: RSA, fingerprint: RSA_FP, user_id: "admin" } });
  });

  it("generates a key when none is given and returns private_key once", async () => {
    const res = await admin(t).post("/v2.1/os-keypairs", { keypair: { name: "generated key_1" } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const k = res.body.keypair;
    expect(Object.keys(k).sort()).toEqual(["fingerprint", "name", "private_key", "public_key", "user_id"]);
    expect(k.private_key).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(k.public_key).toMatch(/^ssh-rsa \S+ Generated-by-Nova$/);
    const blob = Buffer.from(k.public_key.split(" ")[1], "base64");
    expect(k.fingerprint).toBe(createHash("md5").update(blob).digest("hex").match(/../g)!.join(":"));
    const shown = await admin(t).get(`/v2.1/os-keypairs/${encodeURIComponent("generated key_1")}`);
    expect(shown.body.keypair.private_key).toBeUndefined();
  });

  it("a duplicate name is 409 and stores nothing", async () => {
    const before = await count();
    const res = await admin(t).post("/v2.1/os-keypairs", { keypair: { name: "imported", public_key: RSA } });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toBe("Key pair 'imported' already exists.");
    expect(await count()).toBe(before);
  });

  it("names are per user: another user may use the same name", async () => {
    const res = await client(t, MEMBER_P1).post("/v2.1/os-keypairs", { keypair: { name: "imported", public_key: RSA } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.keypair.user_id).toBe("u1");
  });

  describe("bad input is 400 and stores nothing", () => {
    const cases: [string, unknown, string | null][] = [
      ["unsafe characters in the name", { keypair: { name: "bad/name" } }, "Keypair data is invalid: Keypair name contains unsafe characters"],
      ["a dot in the name", { keypair: { name: "a.b" } }, "Keypair data is invalid: Keypair name contains unsafe characters"],
      ["an invalid public key", { keypair: { name: "k1", public_key: "ssh-rsa notakey" } }, "Keypair data is invalid: failed to generate fingerprint"],
      ["an unsupported key type", { keypair: { name: "k2", public_key: "ssh-dss AAAAB3NzaC1kc3MAAACBAP" } }, "Keypair data is invalid: failed to generate fingerprint"],
      ["empty name", { keypair: { name: "" } }, null],
      ["name too long", { keypair: { name: "x".repeat(256) } }, null],
      ["leading space", { keypair: { name: " lead" } }, null],
      ["missing name", { keypair: { public_key: RSA } }, null],
      ["unknown field", { keypair: { name: "k3", type: "ssh" } }, null],
      ["no wrapper", { name: "k4" }, null],
      ["public_key not a string", { keypair: { name: "k5", public_key: 5 } }, null],
    ];
    it.each(cases)("%s", async (_label, body, message) => {
      const before = await count();
      const res = await admin(t).post("/v2.1/os-keypairs", body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      if (message) expect(res.body.badRequest.message).toBe(message);
      expect(await count()).toBe(before);
    });
  });
});

describe("GET /v2.1/os-keypairs, GET and DELETE /os-keypairs/{name}", () => {
  it("lists the caller's keypairs as {keypairs: [{keypair: {name, public_key, fingerprint}}]}", async () => {
    const res = await admin(t).get("/v2.1/os-keypairs");
    expect(res.status).toBe(200);
    expect(res.body.keypairs.map((k: { keypair: { name: string } }) => k.keypair.name)).toEqual(["generated key_1", "imported"]);
    for (const k of res.body.keypairs) expect(Object.keys(k.keypair).sort()).toEqual(["fingerprint", "name", "public_key"]);
    const other = await client(t, MEMBER_P1_OTHER_USER).get("/v2.1/os-keypairs");
    expect(other.body).toEqual({ keypairs: [] });
  });

  it("shows one keypair with the 2.1 fields", async () => {
    const res = await admin(t).get("/v2.1/os-keypairs/imported");
    expect(res.status).toBe(200);
    expect(res.body.keypair).toMatchObject({
      name: "imported",
      public_key: RSA,
      fingerprint: RSA_FP,
      user_id: "admin",
      deleted: false,
      deleted_at: null,
      updated_at: null,
    });
    expect(res.body.keypair.id).toBeTypeOf("number");
    expect(res.body.keypair.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
  });

  it("404 for an unknown name and for another user's keypair", async () => {
    const res = await admin(t).get("/v2.1/os-keypairs/nope");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toBe("Keypair nope not found for user admin");
    expect((await client(t, MEMBER_P1_OTHER_USER).get("/v2.1/os-keypairs/imported")).status).toBe(404);
    expect((await client(t, MEMBER_P1_OTHER_USER).del("/v2.1/os-keypairs/imported")).status).toBe(404);
  });

  it("deletes with 202, then 404", async () => {
    await admin(t).post("/v2.1/os-keypairs", { keypair: { name: "doomed", public_key: RSA } });
    const res = await admin(t).del("/v2.1/os-keypairs/doomed");
    expect(res.status).toBe(202);
    expect(res.text).toBe("");
    expect((await admin(t).get("/v2.1/os-keypairs/doomed")).status).toBe(404);
    expect((await admin(t).del("/v2.1/os-keypairs/doomed")).status).toBe(404);
  });

  it("refuses a keypair over the key_pairs quota with 403", async () => {
    await admin(t).put("/v2.1/os-quota-sets/p1", { quota_set: { key_pairs: 1 } });
    const res = await client(t, MEMBER_P1).post("/v2.1/os-keypairs", { keypair: { name: "second", public_key: RSA } });
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toBe("Quota exceeded, too many key pairs.");
    await admin(t).del("/v2.1/os-quota-sets/p1");
  });
});

describe("key_name on POST /v2.1/servers", () => {
  const boot = (token: string, server: Record<string, unknown>) =>
    client(t, token).post("/v2.1/servers", { server: { name: "vm", flavorRef: "1", imageRef: imageId, networks: "none", ...server } });

  it("accepts the caller's keypair and shows it as key_name", async () => {
    const res = await boot(MEMBER_P1, { key_name: "imported" });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const shown = await client(t, MEMBER_P1).get(`/v2.1/servers/${res.body.server.id}`);
    expect(shown.body.server.key_name).toBe("imported");
    expect((await t.database.db("instances").where({ id: res.body.server.id }).first()).key_name).toBe("imported");
  });

  it("a server without key_name has key_name null", async () => {
    const res = await boot(MEMBER_P1, {});
    expect(res.status).toBe(202);
    expect((await client(t, MEMBER_P1).get(`/v2.1/servers/${res.body.server.id}`)).body.server.key_name).toBeNull();
  });

  it("an unknown keypair, or another user's, is 400 Invalid key_name provided.", async () => {
    const before = Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n);
    for (const [token, name] of [
      [MEMBER_P1, "nope"],
      [MEMBER_P1_OTHER_USER, "imported"],
    ] as const) {
      const res = await boot(token, { key_name: name });
      expect(res.status).toBe(400);
      expect(res.body.badRequest.message).toBe("Invalid key_name provided.");
    }
    expect(Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n)).toBe(before);
  });
});
