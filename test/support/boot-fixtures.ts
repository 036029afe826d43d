/** What a boot needs, made through the API as an admin: flavor "1" (m1.small) and a public image with a file. */
import request from "supertest";
import { expect } from "vitest";
import type { TestApp } from "./services.js";

export async function flavorAndImage(app: TestApp["app"], auth: Record<string, string>): Promise<{ imageId: string }> {
  const srv = () => request(app.server);
  expect((await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await srv().post("/v2/images").set(auth).send({ name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  const imageId = img.body.id as string;
  expect((await srv().put(`/v2/images/${imageId}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(64, 1))).status).toBe(204);
  return { imageId };
}
