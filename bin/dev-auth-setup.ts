/**
 * How `npm start` authenticates its processes and its user:
 *
 * - CIRRUS_AUTH_MODE=dev or none: the static dev token (or nothing); auth is off and the
 *   API says so on every log line.
 * - CIRRUS_AUTH_MODE=oidc (the default) with CIRRUS_OIDC_ISSUER_URL: that issuer; the
 *   operator supplies CIRRUS_ADMIN_TOKEN (for seeding and openrc) and CIRRUS_AGENT_TOKEN.
 * - CIRRUS_AUTH_MODE=oidc without an issuer: a development issuer (common/dev-issuer.ts)
 *   on loopback, living in the `npm start` process. Fresh tokens each start: an admin
 *   (OS_TOKEN), a member of project "demo" (CIRRUS_MEMBER_TOKEN), and the agents'
 *   client-credentials token with the service role.
 */
import type { Config } from "../common/config.js";
import { startDevIssuer, type DevIssuer } from "../common/dev-issuer.js";

/** Long enough for a working day; every start issues new ones. */
export const DEV_TOKEN_TTL_SEC = 12 * 3600;

export interface StartAuth {
  /** Added to the children's environment. */
  env: Record<string, string>;
  /** For seeding and OS_TOKEN; null when an external issuer is used and none was given. */
  adminToken: string | null;
  memberToken: string | null;
  /** Extra openrc lines. */
  openrc: string[];
  describe: string;
  close(): Promise<void>;
}

export async function setUpAuth(config: Config, devToken: string, given: { adminToken?: string | undefined }): Promise<StartAuth> {
  if (config.authMode !== "oidc") {
    return {
      env: { CIRRUS_AUTH_MODE: config.authMode, CIRRUS_AGENT_TOKEN: config.authMode === "dev" ? devToken : "none" },
      adminToken: devToken,
      memberToken: null,
      openrc: [],
      describe: `auth OFF (CIRRUS_AUTH_MODE=${config.authMode}): not for production`,
      close: async () => {},
    };
  }
  if (config.oidc.issuerUrl) {
    return {
      env: {},
      adminToken: given.adminToken ?? null,
      memberToken: null,
      openrc: [`export CIRRUS_OIDC_ISSUER_URL=${config.oidc.issuerUrl}`],
      describe: `OIDC issuer ${config.oidc.issuerUrl} (audience ${config.oidc.audience})`,
      close: async () => {},
    };
  }
  const issuer: DevIssuer = await startDevIssuer({ audience: config.oidc.audience, tokenTtlSec: DEV_TOKEN_TTL_SEC });
  const [adminToken, memberToken, agentToken] = await Promise.all([
    issuer.token("cirrus-admin"),
    issuer.token("cirrus-member"),
    issuer.token("cirrus-agent"),
  ]);
  return {
    env: {
      CIRRUS_AUTH_MODE: "oidc",
      CIRRUS_OIDC_ISSUER_URL: issuer.url,
      CIRRUS_OIDC_AUDIENCE: issuer.audience,
      CIRRUS_OIDC_CLIENT_ID: issuer.apiClient.clientId,
      CIRRUS_OIDC_CLIENT_SECRET: issuer.apiClient.clientSecret,
      CIRRUS_AGENT_TOKEN: agentToken,
    },
    adminToken,
    memberToken,
    openrc: [
      `# Development OIDC issuer (lives as long as npm start); tokens valid ${DEV_TOKEN_TTL_SEC / 3600} h, fresh on every start.`,
      `export CIRRUS_OIDC_ISSUER_URL=${issuer.url}`,
      `# A member (not admin) of project "demo":`,
      `export CIRRUS_MEMBER_TOKEN=${memberToken}`,
    ],
    describe: `development OIDC issuer at ${issuer.url} (no CIRRUS_OIDC_ISSUER_URL configured)`,
    close: () => issuer.close(),
  };
}
