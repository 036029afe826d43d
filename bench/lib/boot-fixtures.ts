/**
 * What a boot needs, created through the API as a user would: Nova's m1.tiny, a small
 * public image with bytes, and a shared network whose /14 subnet holds every benched server.
 */
export interface BootFixtures {
  flavorId: string;
  imageId: string;
  networkId: string;
  subnetId: string;
  /** The subnet's network address. */
  subnetBase: string;
}

/** One JSON call to the API; a non-2xx answer throws with its body. */
export async function apiCall(apiUrl: string, headers: Record<string, string>, method: string, url: string, body?: unknown): Promise<any> {
  const res = await fetch(apiUrl + url, {
    method,
    headers: { ...headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function createBootFixtures(apiUrl: string, headers: Record<string, string>): Promise<BootFixtures> {
  await apiCall(apiUrl, headers, "POST", "/v2.1/flavors", { flavor: { id: "1", name: "m1.tiny", ram: 512, vcpus: 1, disk: 1 } });
  const image = await apiCall(apiUrl, headers, "POST", "/v2/images", {
    name: "bench-guest",
    disk_format: "qcow2",
    container_format: "bare",
    visibility: "public",
    os_type: "linux",
  });
  const upload = await fetch(`${apiUrl}/v2/images/${image.id}/file`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream" },
    body: Buffer.alloc(64 * 1024, 7),
  });
  if (!upload.ok) throw new Error(`image upload → ${upload.status} ${await upload.text()}`);
  const { network } = await apiCall(apiUrl, headers, "POST", "/v2.0/networks", { network: { name: "bench-net", shared: true } });
  const { subnet } = await apiCall(apiUrl, headers, "POST", "/v2.0/subnets", {
    subnet: { network_id: network.id, cidr: "10.64.0.0/14", ip_version: 4, name: "bench-subnet" },
  });
  return { flavorId: "1", imageId: image.id as string, networkId: network.id as string, subnetId: subnet.id as string, subnetBase: "10.64.0.0" };
}

/** The body `nova boot --flavor m1.tiny --image … --nic net-id=… --property role=bench name` sends. */
export function bootBody(f: BootFixtures, name: string): string {
  return JSON.stringify({
    server: {
      name,
      flavorRef: f.flavorId,
      imageRef: f.imageId,
      networks: [{ uuid: f.networkId }],
      metadata: { role: "bench", owner: "b1" },
    },
  });
}
