/**
 * Idempotency-Key for POST /servers and server actions. The key row is inserted in the
 * same transaction as the work it guards, so:
 *
 * - a retry after the first request committed gets the stored answer and creates nothing;
 * - a retry after a crash before commit finds no row and does the work (nothing was kept);
 * - a concurrent duplicate blocks on the first one's uncommitted key (Postgres waits on the
 *   unique index), then replays its answer, or does the work itself if the first rolled back;
 * - the same key with another request (method, path or body) is 422.
 *
 * Keys are per project and live 24 hours. Refused requests (4xx) store nothing: the key
 * stays free, and a corrected retry with the same key is accepted.
 */
import { createHash } from "node:crypto";
import { Type } from "typebox";
import { NovaError, badRequest } from "../common/errors.js";
import type { Db } from "../common/db/knex.js";

export const IDEMPOTENCY_HEADER = "idempotency-key";
export const IDEMPOTENCY_TTL_HOURS = 24;

/** The header as route schemas declare it (so it appears in the OpenAPI document). */
export const IdempotencyHeaders = Type.Object({
  [IDEMPOTENCY_HEADER]: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description:
        "Optional. The same key with the same request within 24 hours returns the first answer and creates nothing new; " +
        "the same key with another request is 422. Keys are per project.",
    }),
  ),
});

export interface StoredResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** JSON with object keys sorted, so key order does not make another request. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value as Record<string, unknown>).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export function fingerprint(method: string, path: string, body: unknown): string {
  return createHash("sha256").update(`${method.toUpperCase()} ${path}\n${canonicalJson(body)}`).digest("hex");
}

/** withIdempotency's guard for a POST: without a key there is nothing to hold it to, so no fingerprint is computed. */
export function postGuard(projectId: string, key: string | null, path: string, body: unknown): { projectId: string; key: string | null; fingerprint: string } {
  return { projectId, key, fingerprint: key === null ? "" : fingerprint("POST", path, body) };
}

/** The key from the request headers, checked: printable ASCII, 1..255 characters, one value. */
export function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | null {
  const raw = headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return null;
  if (Array.isArray(raw)) throw badRequest("Idempotency-Key must be given once.");
  if (raw.length < 1 || raw.length > 255 || !/^[\x21-\x7e]+$/.test(raw)) {
    throw badRequest("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.");
  }
  return raw;
}

export const idempotencyMismatch = (key: string) =>
  new NovaError(
    422,
    `Idempotency-Key ${key} was already used with a different request (method, path or body) in this project within ${IDEMPOTENCY_TTL_HOURS} hours; use a new key for a new request.`,
  );

/**
 * Runs `work` inside a transaction guarded by the key (or plainly without one); `work`
 * must do its writes through the handle it is given.
 * Returns the answer and whether it was replayed.
 */
export async function withIdempotency(
  db: Db,
  guard: { projectId: string; key: string | null; fingerprint: string },
  work: (db: Db) => Promise<StoredResponse>,
): Promise<{ response: StoredResponse; replayed: boolean }> {
  const { key } = guard;
  // Without a key the work runs as it always did (its own transactions); with one, inside ours.
  if (key === null) return { response: await work(db), replayed: false };
  return db.transaction(async (trx) => {
    // Blocks while another transaction holds an uncommitted row for this key.
    const claimed = await trx.raw(
      `INSERT INTO idempotency_keys (project_id, key, fingerprint, status)
       VALUES (?, ?, ?, 0)
       ON CONFLICT (project_id, key) DO UPDATE
          SET fingerprint = EXCLUDED.fingerprint, status = 0, body = NULL, headers = '{}', created_at = now()
        WHERE idempotency_keys.created_at < now() - make_interval(hours => ?)
       RETURNING key`,
      [guard.projectId, key, guard.fingerprint, IDEMPOTENCY_TTL_HOURS],
    );
    if ((claimed as { rows: unknown[] }).rows.length === 0) {
      const row: { fingerprint: string; status: number; body: unknown; headers: Record<string, string> } = await trx("idempotency_keys")
        .where({ project_id: guard.projectId, key })
        .first("fingerprint", "status", "body", "headers");
      if (row.fingerprint !== guard.fingerprint) throw idempotencyMismatch(key);
      return { response: { status: row.status, body: row.body, headers: row.headers }, replayed: true };
    }
    const response = await work(trx);
    await trx("idempotency_keys")
      .where({ project_id: guard.projectId, key })
      .update({
        status: response.status,
        body: response.body === undefined ? null : JSON.stringify(response.body),
        headers: JSON.stringify(response.headers),
      });
    return { response, replayed: false };
  });
}

/** Drops keys older than the TTL (run periodically by the scheduler's sweeper). */
export async function expireIdempotencyKeys(db: Db): Promise<number> {
  return db("idempotency_keys").where("created_at", "<", db.raw("now() - make_interval(hours => ?)", [IDEMPOTENCY_TTL_HOURS])).delete();
}
