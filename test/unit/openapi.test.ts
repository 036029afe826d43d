import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import SwaggerParser from "@apidevtools/swagger-parser";
import { describe, expect, it } from "vitest";
import { generateOpenApi } from "../../openapi/document.js";

const committedPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../openapi/openapi.json");

describe("the OpenAPI document", () => {
  it("is committed exactly as the route schemas generate it (run `npm run openapi` after changing a route)", async () => {
    const committed = await readFile(committedPath, "utf8");
    expect(committed).toBe(await generateOpenApi());
  });

  it("is a valid OpenAPI 3.1 document covering every route of the spine", async () => {
    const doc = JSON.parse(await generateOpenApi());
    await SwaggerParser.validate(structuredClone(doc));
    expect(doc.openapi).toBe("3.1.0");
    for (const p of [
      "/v2.1/servers", "/v2.1/servers/detail", "/v2.1/servers/{id}", "/v2.1/flavors", "/v2.1/flavors/detail",
      "/v2.1/flavors/{id}", "/v2/images", "/v2/images/{id}", "/v2/images/{id}/file", "/v2.0/networks",
      "/v2.0/networks/{id}", "/v2.0/subnets", "/v2.1/os-hypervisors", "/v2.1/os-hypervisors/detail",
      "/v2.1/os-hypervisors/{id}", "/v2.1/os-services", "/", "/v2.1",
    ]) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    expect(Object.keys(doc.paths["/v2.1/servers"].post.responses)).toEqual(expect.arrayContaining(["202", "400", "401"]));
  });
});
