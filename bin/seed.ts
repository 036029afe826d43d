/**
 * Seeds what a first boot needs, through the API itself and only what is missing:
 * Nova's m1 flavors, a shared network "private" with 10.0.0.0/24, and the Linux test
 * guest image built locally from Debian packages.
 */
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const FLAVORS = [
  { id: "1", name: "m1.tiny", ram: 512, vcpus: 1, disk: 1 },
  { id: "2", name: "m1.small", ram: 2048, vcpus: 1, disk: 20 },
  { id: "3", name: "m1.medium", ram: 4096, vcpus: 2, disk: 40 },
  { id: "4", name: "m1.large", ram: 8192, vcpus: 4, disk: 80 },
  { id: "5", name: "m1.xlarge", ram: 16384, vcpus: 8, disk: 160 },
];

export const DEMO_IMAGE = "cirrus-test-guest";
export const DEMO_NETWORK = "private";

type Say = (line: string) => void;

async function call(base: string, token: string, method: string, url: string, body?: unknown): Promise<any> {
  const res = await fetch(base + url, {
    method,
    headers: { "x-auth-token": token, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function seed(base: string, token: string, repoRoot: string, stateDir: string, say: Say): Promise<void> {
  const flavors: { flavors: { name: string }[] } = await call(base, token, "GET", "/v2.1/flavors?is_public=none");
  const have = new Set(flavors.flavors.map((f) => f.name));
  const missing = FLAVORS.filter((f) => !have.has(f.name));
  for (const f of missing) await call(base, token, "POST", "/v2.1/flavors", { flavor: f });
  if (missing.length) say(`✓ flavors: created ${missing.map((f) => f.name).join(", ")}`);

  const nets: { networks: { id: string }[] } = await call(base, token, "GET", `/v2.0/networks?name=${DEMO_NETWORK}`);
  if (nets.networks.length === 0) {
    const { network } = await call(base, token, "POST", "/v2.0/networks", { network: { name: DEMO_NETWORK, shared: true } });
    await call(base, token, "POST", "/v2.0/subnets", { subnet: { network_id: network.id, cidr: "10.0.0.0/24", ip_version: 4, name: `${DEMO_NETWORK}-subnet` } });
    say(`✓ network: created ${DEMO_NETWORK} (10.0.0.0/24)`);
  }

  const images: { images: { id: string; status: string }[] } = await call(base, token, "GET", `/v2/images?name=${DEMO_IMAGE}`);
  if (images.images.some((i) => i.status === "active")) return;
  const file = path.join(stateDir, "images-build", `${DEMO_IMAGE}.qcow2`);
  try {
    await promisify(execFile)("bash", [path.join(repoRoot, "scripts/build-test-guest.sh"), file], { timeout: 120_000 });
  } catch (err) {
    say(`! demo image: could not build the test guest (${(err as Error).message.split("\n")[0]}); run scripts/setup-host.sh as root`);
    return;
  }
  const image = images.images[0] ?? (await call(base, token, "POST", "/v2/images", {
    name: DEMO_IMAGE,
    disk_format: "qcow2",
    container_format: "bare",
    visibility: "public",
    os_type: "linux",
    hw_disk_bus: "virtio",
  }));
  const size = (await stat(file)).size;
  const res = await fetch(`${base}/v2/images/${image.id}/file`, {
    method: "PUT",
    headers: { "x-auth-token": token, "content-type": "application/octet-stream", "content-length": String(size) },
    body: createReadStream(file) as unknown as ReadableStream,
    duplex: "half",
  } as RequestInit);
  if (!res.ok) throw new Error(`uploading the demo image → ${res.status} ${await res.text()}`);
  say(`✓ image: uploaded ${DEMO_IMAGE} (${(size / 1e6).toFixed(1)} MB, a Linux guest that prints to its serial console)`);
}
