/** Builds the OpenAPI document from the route schemas: the app is built, never listens, touches no database. */
import { buildApp } from "../api/app.js";
import { devAuthenticator } from "../api/auth/dev-auth.js";
import { createDb } from "../common/db/knex.js";

export async function generateOpenApi(): Promise<string> {
  // knex connects lazily, so an app that serves no request opens no connection.
  const db = createDb("postgres://openapi@127.0.0.1:1/none");
  const app = await buildApp({
    db,
    config: { publicUrl: "http://127.0.0.1:8774", imageStoreDir: "/nonexistent", serviceDownTimeSec: 60 },
    auth: devAuthenticator("unused"),
  });
  await app.ready();
  const doc = app.swagger();
  await app.close();
  await db.destroy();
  return `${JSON.stringify(doc, null, 2)}\n`;
}
