/**
 * The stock OpenStack clients from Debian (python3-openstackclient, python3-novaclient)
 * against a running Cirrus, with a token and no identity service: keystoneauth's
 * admin_token plugin, configured as the README and .cirrus/openrc say.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uploadImage } from "../support/api-fixtures.js";
import { testGuestImage } from "../support/guest-image.js";
import { uniqueName } from "../support/services.js";
import { client, startStack, waitFor, type Stack } from "../support/stack.js";

const run = promisify(execFile);
let stack: Stack;
let netId: string;

/** Every OS_*, NOVA_* and NOVACLIENT_* variable must go: any project variable breaks admin_token. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OS_|NOVA_|NOVACLIENT_)/.test(k)));
}

async function openstack(...args: string[]): Promise<string> {
  const env = { ...cleanEnv(), OS_AUTH_TYPE: "admin_token", OS_ENDPOINT: `${stack.url}/v2.1`, OS_TOKEN: stack.token };
  try {
    const { stdout } = await run("openstack", args, { env, timeout: 180_000 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`openstack ${args.join(" ")} failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

async function nova(...args: string[]): Promise<string> {
  // The nova shell insists on a project and an auth URL that admin_token never uses.
  const env = { ...cleanEnv(), OS_PROJECT_ID: "unused", OS_AUTH_URL: "http://keystone.invalid/v3" };
  const full = ["--os-auth-type", "admin_token", "--os-endpoint", `${stack.url}/v2.1`, "--os-token", stack.token, ...args];
  try {
    const { stdout } = await run("nova", full, { env, timeout: 180_000 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`nova ${args.join(" ")} failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

const json = async (...args: string[]) => JSON.parse(await openstack(...args, "-f", "json"));

beforeAll(async () => {
  stack = await startStack({ agents: [{ host: uniqueName("osc"), uri: "test:///default" }] });
  await uploadImage(stack, await testGuestImage(), { name: "cirros" });
  const api = client(stack);
  netId = (await api("POST", "/v2.0/networks", { network: { name: "private", shared: true } })).body.network.id;
  await api("POST", "/v2.0/subnets", { subnet: { network_id: netId, cidr: "10.40.0.0/24", ip_version: 4 } });
}, 240_000);

afterAll(async () => stack?.stop());

describe("the openstack client", () => {
  it("manages flavors, keypairs and server groups", async () => {
    try {
      await openstack("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "osc.tiny");
      await openstack("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "--private", "osc.private");
      const flavors = await json("flavor", "list", "--all");
      expect(flavors.map((f: { Name: string }) => f.Name)).toEqual(expect.arrayContaining(["osc.tiny", "osc.private"]));
      const kp = await openstack("keypair", "create", "kp1");
      expect(kp).toContain("PRIVATE KEY");
      const group = await json("server", "group", "create", "--policy", "anti-affinity", "grp1");
      expect(group.name).toBe("grp1");
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 240_000);

  it("boots by names with --wait, lists, shows, stops, starts, reboots and deletes with --wait", async () => {
    try {
      const created = await json("server", "create", "--flavor", "osc.tiny", "--image", "cirros", "--network", "private", "--wait", "osc-vm");
      expect(created.status).toBe("ACTIVE");
      const list = await json("server", "list");
      expect(list.map((s: { Name: string }) => s.Name)).toContain("osc-vm");
      const shown = await json("server", "show", "osc-vm");
      expect(shown.addresses ?? shown.Networks).toBeTruthy();
      await openstack("server", "stop", "osc-vm");
      await waitFor("SHUTOFF", async () => (await json("server", "show", "osc-vm")).status === "SHUTOFF", 60_000, 1000);
      await openstack("server", "start", "osc-vm");
      await waitFor("ACTIVE", async () => (await json("server", "show", "osc-vm")).status === "ACTIVE", 60_000, 1000);
      await openstack("server", "reboot", "--wait", "osc-vm");
      await openstack("server", "delete", "--wait", "osc-vm");
      expect((await json("server", "list")).map((s: { Name: string }) => s.Name)).not.toContain("osc-vm");
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 300_000);

  it("lists hypervisors and compute services, and shows absolute limits", async () => {
    const hyps = await json("hypervisor", "list");
    expect(hyps.length).toBeGreaterThanOrEqual(1);
    const services = await json("compute", "service", "list");
    expect(services[0]).toMatchObject({ Binary: "nova-compute", State: "up", Status: "enabled" });
    const limits = await json("limits", "show", "--absolute");
    expect(limits.map((l: { Name: string }) => l.Name)).toContain("maxTotalInstances");
  }, 120_000);
});

describe("the nova client", () => {
  it("boots with a fixed IP and a config drive, then shows and deletes it", async () => {
    try {
      const out = await nova("boot", "nova-vm", "--flavor", "osc.tiny", "--image", "cirros", "--nic", `net-id=${netId},v4-fixed-ip=10.40.0.77`, "--config-drive", "True", "--poll");
      expect(out).toMatch(/nova-vm/);
      const shown = await nova("show", "nova-vm");
      expect(shown).toMatch(/ACTIVE/);
      expect(shown).toContain("10.40.0.77");
      const list = await nova("list");
      expect(list).toContain("nova-vm");
      await nova("delete", "nova-vm");
      await waitFor("nova-vm to be gone", async () => !(await nova("list")).includes("nova-vm"), 60_000, 1000);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 300_000);
});
