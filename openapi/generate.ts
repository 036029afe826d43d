/** `npm run openapi`: writes openapi/openapi.json from the route schemas. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateOpenApi } from "./document.js";

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "openapi.json");
await writeFile(out, await generateOpenApi());
console.log(`wrote ${out}`);
