/**
 * Completes the OpenAPI document that @fastify/swagger builds from the route schemas
 * with what every route shares and no route schema says: the request and response
 * headers (request id, microversion), the error answers of the common hooks (401, 403,
 * 429, 500, and on /v2.1 the microversion's 400 and 406), operation ids for generated
 * SDKs, the server URL, and examples of the main request and response bodies.
 * Registered as swagger's transformObject, so /openapi.json and the committed
 * openapi/openapi.json both carry it.
 */

type Json = Record<string, any>;

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"] as const;

const ERROR_EXAMPLES: Record<number, [string, string, string]> = {
  400: ["badRequest", "Invalid input for field/attribute flavorRef.", "badRequest: malformed input, or a microversion header of an invalid format"],
  401: ["unauthorized", "The request you have made requires authentication.", "unauthorized: no token, or a token that is not valid"],
  403: ["forbidden", "Policy doesn't allow os_compute_api:servers:create to be performed.", "forbidden: the policy does not allow this caller"],
  404: ["itemNotFound", "Instance 5e1a2b3c-0000-4000-8000-000000000000 could not be found.", "itemNotFound (also for another project's resource)"],
  406: ["notAcceptable", "Version 9.99 is not supported by the API. Minimum is 2.1 and maximum is 2.100.", "notAcceptable: the requested microversion is not supported"],
  409: ["conflictingRequest", "Cannot 'stop' instance while it is in task_state powering-off", "conflictingRequest: the resource's state does not allow this"],
  413: ["overLimit", "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances", "overLimit"],
  429: ["overLimit", "This request was rate-limited.", "overLimit: too many mutating calls by this project; see Retry-After"],
  500: ["computeFault", "Unexpected API Error. Please report this at the project's issue tracker and attach the request id.", "computeFault: an unexpected error (the body never carries a stack trace)"],
  503: ["serviceUnavailable", "The compute host does not answer.", "serviceUnavailable: a dependency does not answer; retry later"],
};

function errorExample(code: number): Json {
  const [key, message] = ERROR_EXAMPLES[code] ?? ["computeFault", "error"];
  return { [key]: { code, message } };
}

/** Request body examples: "METHOD path" -> example. */
const REQUEST_EXAMPLES: Record<string, Json> = {
  "post /v2.1/servers": {
    server: {
      name: "vm1",
      flavorRef: "1",
      imageRef: "70a599e0-31e7-49b7-b260-868f441e862b",
      networks: [{ uuid: "ff608d40-75e9-48cb-b745-77bb55b5eaf2" }],
      metadata: { role: "web" },
      key_name: "kp1",
      config_drive: true,
    },
  },
  "post /v2.1/servers/{id}/action": { "os-stop": null },
  "post /v2.1/flavors": { flavor: { name: "m1.tiny", id: "1", ram: 512, vcpus: 1, disk: 1 } },
  "post /v2/images": { name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" },
  "post /v2.0/networks": { network: { name: "private", shared: true } },
  "post /v2.0/subnets": { subnet: { network_id: "ff608d40-75e9-48cb-b745-77bb55b5eaf2", cidr: "10.0.0.0/24", ip_version: 4, name: "private-subnet" } },
  "post /v2.1/os-keypairs": { keypair: { name: "kp1" } },
};

const SERVER_EXAMPLE = {
  id: "5e1a2b3c-0000-4000-8000-000000000000",
  name: "vm1",
  status: "ACTIVE",
  tenant_id: "admin",
  user_id: "admin",
  metadata: { role: "web" },
  hostId: "3c4f5e6d7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
  image: { id: "70a599e0-31e7-49b7-b260-868f441e862b", links: [{ rel: "bookmark", href: "http://127.0.0.1:8774/images/70a599e0-31e7-49b7-b260-868f441e862b" }] },
  flavor: { id: "1", links: [{ rel: "bookmark", href: "http://127.0.0.1:8774/flavors/1" }] },
  created: "2026-11-26T08:00:00Z",
  updated: "2026-11-26T08:00:07Z",
  addresses: { private: [{ version: 4, addr: "10.0.0.5", "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:12:34:56" }] },
  accessIPv4: "",
  accessIPv6: "",
  links: [{ rel: "self", href: "http://127.0.0.1:8774/v2.1/servers/5e1a2b3c-0000-4000-8000-000000000000" }],
  "OS-DCF:diskConfig": "MANUAL",
  progress: 0,
  "OS-EXT-AZ:availability_zone": "nova",
  config_drive: "True",
  key_name: "kp1",
  "OS-SRV-USG:launched_at": "2026-11-26T08:00:07.000000",
  "OS-SRV-USG:terminated_at": null,
  "OS-EXT-STS:task_state": null,
  "OS-EXT-STS:vm_state": "active",
  "OS-EXT-STS:power_state": 1,
  "os-extended-volumes:volumes_attached": [],
};

/** Response body examples: "METHOD path status" -> example. */
const RESPONSE_EXAMPLES: Record<string, Json> = {
  "post /v2.1/servers 202": {
    server: {
      id: "5e1a2b3c-0000-4000-8000-000000000000",
      links: [{ rel: "self", href: "http://127.0.0.1:8774/v2.1/servers/5e1a2b3c-0000-4000-8000-000000000000" }],
      "OS-DCF:diskConfig": "MANUAL",
      security_groups: [{ name: "default" }],
      adminPass: "kD8pQ2xW7mZr",
    },
  },
  "get /v2.1/servers/{id} 200": { server: SERVER_EXAMPLE },
  "get /v2.1/servers/detail 200": { servers: [SERVER_EXAMPLE] },
  "get /v2.1/flavors/{id} 200": {
    flavor: {
      id: "1",
      name: "m1.tiny",
      ram: 512,
      vcpus: 1,
      disk: 1,
      "OS-FLV-EXT-DATA:ephemeral": 0,
      swap: "",
      rxtx_factor: 1.0,
      "os-flavor-access:is_public": true,
      "OS-FLV-DISABLED:disabled": false,
      links: [{ rel: "self", href: "http://127.0.0.1:8774/v2.1/flavors/1" }],
    },
  },
};

function operationId(method: string, path: string): string {
  const words = path
    .replace(/^\/v2(\.[01])?/, (v) => (v === "/v2" ? "/image" : v === "/v2.0" ? "/network" : ""))
    .split("/")
    .filter(Boolean)
    .map((seg) => (seg.startsWith("{") ? `by-${seg.slice(1, -1)}` : seg))
    .join("-")
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  const camel = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join("");
  return `${method}${camel || "Root"}`;
}

export function enrichOpenApi(doc: Json, publicUrl: string): Json {
  doc.servers = [{ url: publicUrl, description: "this Cirrus (npm start listens on http://127.0.0.1:8774)" }];
  const components = (doc.components ??= {});
  const schemas = (components.schemas ??= {});
  schemas.ErrorBody = {
    type: "object",
    description: 'Nova\'s error envelope: one key (badRequest, itemNotFound, conflictingRequest, ...) holding the code and a message.',
    additionalProperties: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "integer" }, message: { type: "string" }, retryAfter: { type: "string" } },
    },
    examples: [errorExample(404)],
  };
  components.parameters = {
    ...components.parameters,
    OpenStackApiVersion: {
      name: "OpenStack-API-Version",
      in: "header",
      required: false,
      description: 'The compute microversion wanted, "compute 2.x" or "compute latest"; without it (and without X-OpenStack-Nova-API-Version) 2.1.',
      schema: { type: "string", examples: ["compute 2.79"] },
    },
    XOpenStackNovaApiVersion: {
      name: "X-OpenStack-Nova-API-Version",
      in: "header",
      required: false,
      description: "The older microversion header (a bare version such as 2.79); OpenStack-API-Version wins when both are sent.",
      schema: { type: "string", examples: ["2.79"] },
    },
    XOpenStackRequestId: {
      name: "X-OpenStack-Request-Id",
      in: "header",
      required: false,
      description: "A caller-chosen request id (req-<uuid>); it is echoed and travels in every job, report and log line. Without it (or if malformed) Cirrus makes one.",
      schema: { type: "string", pattern: "^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", examples: ["req-3f0c4f4e-5b0a-4a7d-9d6c-6c1e0f3b2a11"] },
    },
  };
  components.headers = {
    ...components.headers,
    XOpenStackRequestId: { description: "The request id (also in every log line about this request)", schema: { type: "string" } },
    XComputeRequestId: { description: "The same request id, under Nova's older name", schema: { type: "string" } },
    OpenStackApiVersion: { description: 'The microversion used, e.g. "compute 2.79"', schema: { type: "string" } },
    XOpenStackNovaApiVersion: { description: "The microversion used, e.g. 2.79", schema: { type: "string" } },
    RetryAfter: { description: "Seconds to wait before retrying", schema: { type: "string" } },
  };
  const errorResponse = (code: number): Json => ({
    description: ERROR_EXAMPLES[code]?.[2] ?? "error",
    headers: {},
    content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorBody" }, example: errorExample(code) } },
  });

  const usedIds = new Set<string>();
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    const compute = path === "/v2.1" || path.startsWith("/v2.1/");
    for (const method of METHODS) {
      const op: Json | undefined = item[method];
      if (!op) continue;
      let id = op.operationId ?? operationId(method, path);
      while (usedIds.has(id)) id = `${id}_`;
      usedIds.add(id);
      op.operationId = id;

      const params: Json[] = (op.parameters ??= []);
      const has = (name: string) => params.some((p) => p.in === "header" && String(p.name).toLowerCase() === name.toLowerCase());
      const refs = [...(compute ? ["OpenStackApiVersion", "XOpenStackNovaApiVersion"] : []), "XOpenStackRequestId"];
      for (const ref of refs) {
        const name = components.parameters[ref].name as string;
        if (!has(name)) params.push({ $ref: `#/components/parameters/${ref}` });
      }

      const responses: Json = (op.responses ??= {});
      const authenticated = !(Array.isArray(op.security) && op.security.length === 0);
      const codes = [500];
      if (authenticated) codes.push(401, 403);
      if (authenticated && method !== "get") codes.push(429);
      if (compute) codes.push(400, 406);
      for (const code of codes) if (!responses[code]) responses[code] = errorResponse(code);

      for (const [status, response] of Object.entries<Json>(responses)) {
        const headers: Json = (response.headers ??= {});
        headers["X-OpenStack-Request-Id"] ??= { $ref: "#/components/headers/XOpenStackRequestId" };
        headers["X-Compute-Request-Id"] ??= { $ref: "#/components/headers/XComputeRequestId" };
        if (compute) {
          headers["OpenStack-API-Version"] ??= { $ref: "#/components/headers/OpenStackApiVersion" };
          headers["X-OpenStack-Nova-API-Version"] ??= { $ref: "#/components/headers/XOpenStackNovaApiVersion" };
        }
        if (status === "429" || status === "503") headers["Retry-After"] ??= { $ref: "#/components/headers/RetryAfter" };
        const json = response.content?.["application/json"];
        if (json && /^[45]/.test(status) && json.example === undefined) json.example = errorExample(Number(status));
        const example = RESPONSE_EXAMPLES[`${method} ${path} ${status}`];
        if (json && example && json.example === undefined) json.example = example;
      }

      // Raw uploads have no JSON schema for Fastify to describe.
      if (method === "put" && path === "/v2/images/{id}/file" && !op.requestBody) {
        op.requestBody = {
          required: true,
          description: "The image's bytes, streamed; its size and md5/sha512 checksums are recorded",
          content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
        };
      }

      const requestExample = REQUEST_EXAMPLES[`${method} ${path}`];
      const requestJson = op.requestBody?.content?.["application/json"];
      if (requestJson && requestExample && requestJson.example === undefined) requestJson.example = requestExample;
    }
  }
  return doc;
}
