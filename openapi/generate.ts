/** `npm run openapi`: writes openapi/openapi.json from the route schemas. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateClientTypes, generateOpenApi } from "./document.js";

const dir = path.dirname(fileURLToPath(import.meta.url));
const doc = await generateOpenApi();
await writeFile(path.join(dir, "openapi.json"), doc);
console.log(`wrote ${path.join(dir, "openapi.json")}`);
await writeFile(path.join(dir, "cirrus-api.d.ts"), await generateClientTypes(doc));
console.log(`wrote ${path.join(dir, "cirrus-api.d.ts")} (SDK types for openapi-fetch)`);
