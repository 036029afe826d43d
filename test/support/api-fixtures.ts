/** Creates what a boot needs through the API, the way a user would. */
import { readFile } from "node:fs/promises";
import type { Stack } from "./stack.js";
import { client } from "./stack.js";

export async function uploadImage(stack: Pick<Stack, "url" | "token">, file: string, props: Record<string, unknown> = {}): Promise<string> {
  const api = client(stack);
  const created = await api("POST", "/v2/images", { name: "guest", disk_format: "qcow2", container_format: "bare", visibility: "public", ...props });
  if (created.status !== 201) throw new Error(`image create: ${created.status} ${JSON.stringify(created.body)}`);
  const res = await fetch(`${stack.url}/v2/images/${created.body.id}/file`, {
    method: "PUT",
    headers: { "x-auth-token": stack.token, "content-type": "application/octet-stream" },
    body: await readFile(file),
  });
  if (res.status !== 204) throw new Error(`image upload: ${res.status} ${await res.text()}`);
  return created.body.id as string;
}

export async function createNetwork(stack: Pick<Stack, "url" | "token">, cidr = "10.20.0.0/24"): Promise<string> {
  const api = client(stack);
  const net = await api("POST", "/v2.0/networks", { network: { name: `net-${cidr}`, shared: true } });
  const sub = await api("POST", "/v2.0/subnets", { subnet: { network_id: net.body.network.id, cidr, ip_version: 4 } });
  if (sub.status !== 201) throw new Error(`subnet: ${sub.status} ${JSON.stringify(sub.body)}`);
  return net.body.network.id as string;
}

export async function createFlavor(stack: Pick<Stack, "url" | "token">, f: { id: string; ram: number; vcpus: number; disk: number }): Promise<string> {
  const api = client(stack);
  const res = await api("POST", "/v2.1/flavors", { flavor: { name: `flavor-${f.id}`, ...f } });
  if (res.status !== 200) throw new Error(`flavor: ${res.status} ${JSON.stringify(res.body)}`);
  return f.id;
}
