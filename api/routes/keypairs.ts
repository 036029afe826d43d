/**
 * Keypairs at microversion 2.1 (nova-contract 1.5): per user; create answers 200 and
 * generates a key (returning private_key) when no public_key is given; delete is 202.
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { badRequest, conflict, forbidden, notFound } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { projectLimits } from "../quotas/quota.js";
import { NoBody, errors } from "../schemas/common.js";
import { fingerprintOf, generateKeyPair, parsePublicKey } from "./keypair-keys.js";

export interface KeypairRow {
  id: number;
  user_id: string;
  project_id: string;
  name: string;
  type: string;
  public_key: string;
  fingerprint: string;
  created_at: Date;
}

const KeypairSummary = Type.Object({ name: Type.String(), public_key: Type.String(), fingerprint: Type.String() });

const KeypairCreated = Type.Object({
  keypair: Type.Object({
    name: Type.String(),
    public_key: Type.String(),
    fingerprint: Type.String(),
    user_id: Type.String(),
    private_key: Type.Optional(Type.String({ description: "Only when the key was generated (no public_key sent)" })),
  }),
});

const KeypairDetail = Type.Object({
  keypair: Type.Object({
    name: Type.String(),
    public_key: Type.String(),
    fingerprint: Type.String(),
    user_id: Type.String(),
    id: Type.Integer(),
    created_at: Type.String(),
    updated_at: Type.Null(),
    deleted: Type.Boolean(),
    deleted_at: Type.Null(),
  }),
});

const KeypairCreateBody = Type.Object(
  {
    keypair: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 255 }),
        public_key: Type.Optional(Type.String({ description: "An OpenSSH public key (rsa, ed25519, ecdsa); absent: one is generated" })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const NameParams = Type.Object({ name: Type.String({ maxLength: 255 }) });

const SAFE_NAME = /^[A-Za-z0-9_\- ]+$/;

/** Nova's timestamps without a zone: 2024-01-02T03:04:05.000000. */
export const novaTime = (d: Date | null | undefined): string | null => (d ? d.toISOString().replace("Z", "000") : null);

/** The caller's keypair of that name, if any (what key_name on a boot may name). */
export async function findKeypair(db: Db, ctx: RequestContext, name: string): Promise<KeypairRow | undefined> {
  return db<KeypairRow>("key_pairs").where({ user_id: ctx.userId, name }).first();
}

export const keypairRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const notFoundFor = (name: string, ctx: RequestContext) => notFound(`Keypair ${name} not found for user ${ctx.userId}`);

  app.get(
    "/v2.1/os-keypairs",
    {
      schema: {
        summary: "List the caller's keypairs",
        tags: ["keypairs"],
        response: { 200: Type.Object({ keypairs: Type.Array(Type.Object({ keypair: KeypairSummary })) }), ...errors() },
      },
    },
    async (req) => {
      const rows = await db<KeypairRow>("key_pairs").where({ user_id: req.ctx.userId }).orderBy("name");
      return { keypairs: rows.map((r) => ({ keypair: { name: r.name, public_key: r.public_key, fingerprint: r.fingerprint } })) };
    },
  );

  app.post(
    "/v2.1/os-keypairs",
    {
      schema: {
        summary: "Import or generate a keypair",
        description: "200 (201 only from 2.2). Without public_key, an RSA key is generated and its private_key returned once.",
        tags: ["keypairs"],
        body: KeypairCreateBody,
        response: { 200: KeypairCreated, ...errors(400, 403, 409) },
      },
    },
    async (req) => {
      const { name, public_key } = req.body.keypair;
      if (name.trim() !== name) throw badRequest(`Invalid input for field/attribute name. Value: ${name}. Leading or trailing whitespace is not allowed.`);
      if (!SAFE_NAME.test(name)) throw badRequest("Keypair data is invalid: Keypair name contains unsafe characters");
      let publicKey: string;
      let fingerprint: string;
      let privateKey: string | undefined;
      if (public_key !== undefined) {
        const parsed = parsePublicKey(public_key);
        if (!parsed) throw badRequest("Keypair data is invalid: failed to generate fingerprint");
        publicKey = public_key.trim();
        fingerprint = fingerprintOf(parsed.blob);
      } else {
        const generated = generateKeyPair();
        publicKey = generated.publicKey;
        fingerprint = generated.fingerprint;
        privateKey = generated.privateKey;
      }
      await db.transaction(async (trx) => {
        await trx("quota_locks").insert({ project_id: req.ctx.projectId }).onConflict("project_id").ignore();
        await trx("quota_locks").where({ project_id: req.ctx.projectId }).forUpdate().first();
        const limit = (await projectLimits(trx, req.ctx.projectId)).key_pairs;
        const [count] = await trx("key_pairs").where({ user_id: req.ctx.userId }).count<{ n: string }[]>("* as n");
        if (limit >= 0 && Number(count!.n) + 1 > limit) throw forbidden("Quota exceeded, too many key pairs.");
        const inserted = await trx("key_pairs")
          .insert({ user_id: req.ctx.userId, project_id: req.ctx.projectId, name, type: "ssh", public_key: publicKey, fingerprint })
          .onConflict(["user_id", "name"])
          .ignore()
          .returning("id");
        if (inserted.length === 0) throw conflict(`Key pair '${name}' already exists.`);
      });
      return {
        keypair: {
          name,
          public_key: publicKey,
          fingerprint,
          user_id: req.ctx.userId,
          ...(privateKey !== undefined ? { private_key: privateKey } : {}),
        },
      };
    },
  );

  app.get(
    "/v2.1/os-keypairs/:name",
    {
      schema: {
        summary: "Show a keypair",
        tags: ["keypairs"],
        params: NameParams,
        response: { 200: KeypairDetail, ...errors(404) },
      },
    },
    async (req) => {
      const row = await findKeypair(db, req.ctx, req.params.name);
      if (!row) throw notFoundFor(req.params.name, req.ctx);
      return {
        keypair: {
          name: row.name,
          public_key: row.public_key,
          fingerprint: row.fingerprint,
          user_id: row.user_id,
          id: Number(row.id),
          created_at: novaTime(row.created_at)!,
          updated_at: null,
          deleted: false,
          deleted_at: null,
        },
      };
    },
  );

  app.delete(
    "/v2.1/os-keypairs/:name",
    {
      schema: {
        summary: "Delete a keypair",
        description: "202 at 2.1 (204 from 2.2).",
        tags: ["keypairs"],
        params: NameParams,
        response: { 202: NoBody("Deleted"), ...errors(404) },
      },
    },
    async (req, reply) => {
      const deleted = await db("key_pairs").where({ user_id: req.ctx.userId, name: req.params.name }).delete();
      if (deleted === 0) throw notFoundFor(req.params.name, req.ctx);
      return reply.status(202).send();
    },
  );
};
