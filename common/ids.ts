import { randomUUID } from "node:crypto";
import { pooledRandomBytes } from "./random-bytes.js";

export const newId = (): string => randomUUID();

/** Nova's request id form, req-<uuid4>. */
export const newRequestId = (): string => `req-${randomUUID()}`;

const REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const isRequestId = (value: string): boolean => REQUEST_ID.test(value);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID.test(value);

/** Neutron's default base_mac fa:16:3e:00:00:00 with three random octets. */
export function newMacAddress(): string {
  const tail = [...pooledRandomBytes(3)].map((b) => b.toString(16).padStart(2, "0"));
  return ["fa", "16", "3e", ...tail].join(":");
}
