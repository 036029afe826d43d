/**
 * POST /servers/{id}/action: each action gated as Nova gates it (409 with Nova's
 * message otherwise), recorded as an instance action, and handed to the host's agent
 * through the outbox in the same transaction that sets the task_state.
 */
import type { Knex } from "knex";
import type { Static } from "typebox";
import { badRequest, conflict, NovaError, notFound } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import { applyEvent, recordEvent, startAction } from "../../common/db/instance-records.js";
import { dropMigrationAllocations } from "../../common/db/resize-allocations.js";
import { newId } from "../../common/ids.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import type { ComputeJob, InstanceRef, PowerAction, SpawnSpec } from "../../common/messages.js";
import { enqueue } from "../../common/outbox.js";
import { computeQueueName } from "../../common/queues.js";
import { ACTIONS, conflictMessage, type ActionKind } from "../../common/server-actions.js";
import type { InstanceState, VmState } from "../../common/state-machine.js";
import { loadCandidates } from "../../scheduler/candidates.js";
import { claim } from "../../scheduler/claim.js";
import { capacityFilter } from "../../scheduler/filters/capacity.js";
import { resourcesForFlavor } from "../../scheduler/host-state.js";
import { spawnJob, type SpawnSource } from "../../scheduler/spawn-spec.js";
import type { RequestContext } from "../context.js";
import { tailLines, type ComputeRpc } from "../rpc.js";
import type { ServerActionBody } from "../schemas/server-actions.js";
import { resolveFlavor, resolveImage } from "./create.js";
import type { InstanceRow } from "./view.js";

type Body = Static<typeof ServerActionBody>;

export interface ActionDeps {
  db: Db;
  publicUrl: string;
  serviceDownTimeSec: number;
  rpc: ComputeRpc | null;
}

export interface ActionOutcome {
  status: 200 | 202 | 204;
  body?: unknown;
  location?: string;
  /** Rebuild answers with the server's representation, rendered by the route. */
  renderServer?: boolean;
}

type Row = InstanceRow & { locked: boolean; locked_by: string | null; old_vm_state: VmState | null; old_flavor: unknown; migration_id: string | null };

async function specOf(trx: Knex.Transaction, source: SpawnSource, requestId: string, attempt: number): Promise<SpawnSpec> {
  const job = await spawnJob(trx, source, requestId, attempt);
  if (job.kind !== "spawn") throw new Error("spawnJob did not build a spawn job");
  return job.spec;
}

type StateRow = InstanceState & { id: string };
const asState = (row: Row) => row as unknown as StateRow;

const ref = (row: Row): InstanceRef => ({ instance_id: row.id, instance_name: instanceNameFromSeq(row.seq) });

async function lockVisible(trx: Knex.Transaction, ctx: RequestContext, id: string): Promise<Row> {
  const row: Row | undefined = await trx("instances").where({ id }).whereNot("vm_state", "deleted").forUpdate().first();
  if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
  return row;
}

/** Nova's check_instance_lock, then check_instance_state (vm_state first, then task_state). */
function gate(row: Row, ctx: RequestContext, kind: ActionKind): void {
  const rule = ACTIONS[kind];
  if (row.locked && !ctx.isAdmin) throw conflict(`Instance ${row.id} is locked`);
  if (!rule.from.includes(row.vm_state as VmState)) throw conflict(conflictMessage(rule.nova, row.id, "vm_state", row.vm_state));
  if (row.task_state !== null) throw conflict(conflictMessage(rule.nova, row.id, "task_state", row.task_state));
  if (row.host === null) throw conflict(conflictMessage(rule.nova, row.id, "vm_state", row.vm_state));
}

async function dispatch(
  trx: Knex.Transaction,
  ctx: RequestContext,
  requestId: string,
  row: Row,
  kind: ActionKind,
  job: ComputeJob,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await applyEvent(trx, asState(row), { type: "action_started", action: kind }, extra);
  await startAction(trx, { instanceId: row.id, action: ACTIONS[kind].nova, requestId, projectId: ctx.projectId, userId: ctx.userId });
  await enqueue(trx, { queue: computeQueueName(row.host!), name: job.kind, jobId: `${kind}-${row.id}-${requestId}`, payload: job });
}

const POWER: Record<string, PowerAction> = {
  "os-start": "start",
  "os-stop": "stop",
  pause: "pause",
  unpause: "unpause",
  suspend: "suspend",
  resume: "resume",
};

export async function runAction(deps: ActionDeps, ctx: RequestContext, requestId: string, id: string, body: Body): Promise<ActionOutcome> {
  const [name] = Object.keys(body) as (keyof Body)[];
  const { db } = deps;

  if (name && name in POWER) {
    const action = POWER[name]!;
    await db.transaction(async (trx) => {
      const row = await lockVisible(trx, ctx, id);
      gate(row, ctx, action);
      await dispatch(trx, ctx, requestId, row, action, { kind: "power", request_id: requestId, action, instance: ref(row) });
    });
    return { status: 202 };
  }

  switch (name) {
    case "reboot": {
      const action: PowerAction = body.reboot!.type.toUpperCase() === "HARD" ? "reboot_hard" : "reboot_soft";
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        gate(row, ctx, action);
        await dispatch(trx, ctx, requestId, row, action, { kind: "power", request_id: requestId, action, instance: ref(row) });
      });
      return { status: 202 };
    }

    case "lock":
    case "unlock": {
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        if (name === "unlock" && row.locked && row.locked_by === "admin" && !ctx.isAdmin) {
          throw new NovaError(403, "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.");
        }
        const locked = name === "lock";
        await trx("instances")
          .where({ id })
          .update({
            locked,
            locked_reason: locked ? (body.lock?.locked_reason ?? null) : null,
            locked_by: locked ? (ctx.isAdmin && row.project_id !== ctx.projectId ? "admin" : "owner") : null,
            updated_at: trx.fn.now(),
          });
        await startAction(trx, { instanceId: id, action: name, requestId, projectId: ctx.projectId, userId: ctx.userId });
        await recordEvent(trx, { instanceId: id, requestId, event: `api_${name}`, result: "Success", finishAction: true });
      });
      return { status: 202 };
    }

    case "rebuild": {
      const r = body.rebuild!;
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        gate(row, ctx, "rebuild");
        const image = await resolveImage(trx, ctx, r.imageRef, row.flavor);
        const source: SpawnSource = {
          ...(row as unknown as SpawnSource),
          image,
          name: r.name ?? row.name,
          metadata: r.metadata ?? row.metadata,
        };
        const spec = await specOf(trx, source, requestId, row.attempts);
        await dispatch(trx, ctx, requestId, row, "rebuild", { kind: "rebuild", request_id: requestId, spec, stopped: row.vm_state === "stopped" }, {
          image_id: image.id,
          image: JSON.stringify(image),
          name: source.name,
          metadata: JSON.stringify(source.metadata),
          ...(r.accessIPv4 !== undefined ? { access_ip_v4: r.accessIPv4 } : {}),
          ...(r.accessIPv6 !== undefined ? { access_ip_v6: r.accessIPv6 } : {}),
          ...(r.description !== undefined ? { description: r.description } : {}),
        });
      });
      return { status: 202, renderServer: true, location: `${deps.publicUrl}/v2.1/servers/${id}` };
    }

    case "resize": {
      const r = body.resize!;
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        gate(row, ctx, "resize");
        const flavor = await resolveFlavor(trx, ctx, r.flavorRef);
        if (flavor.id === row.flavor.id) throw badRequest("When resizing, instances must change flavor!");
        if (flavor.disk < row.flavor.disk) throw badRequest("Resize error: Unable to resize disk down.");
        if (row.image && flavor.ram < ((row.image as { min_ram?: number }).min_ram ?? 0)) {
          throw badRequest("Flavor's memory is too small for requested image.");
        }
        // Nova's same-host resize: the host must hold the old and the new flavor until confirm or revert.
        const provider: { id: string } | undefined = await trx("resource_providers").where({ name: row.host! }).first("id");
        const [host] = provider ? await loadCandidates(trx, deps.serviceDownTimeSec, provider.id) : [];
        const spec = { instanceId: id, resources: resourcesForFlavor(flavor), availabilityZone: null, ignoreHosts: [] };
        if (!host || !capacityFilter.passes(host, spec)) {
          throw badRequest(`No valid host was found. Host ${row.host} has no room for flavor ${flavor.name} next to the current one.`);
        }
        const migrationId = newId();
        await trx("allocations").where({ consumer_id: id }).update({ consumer_id: migrationId });
        if (!(await claim(trx, host, id, spec.resources))) {
          throw conflict(`Instance ${id} could not claim flavor ${flavor.name} on ${row.host}: the host changed, try again.`);
        }
        const source: SpawnSource = { ...(row as unknown as SpawnSource), flavor };
        const resized = await specOf(trx, source, requestId, row.attempts);
        await dispatch(trx, ctx, requestId, row, "resize", { kind: "resize", request_id: requestId, spec: resized, stopped: row.vm_state === "stopped" }, {
          flavor: JSON.stringify(flavor),
          old_flavor: JSON.stringify(row.flavor),
          old_vm_state: row.vm_state,
          migration_id: migrationId,
        });
      });
      return { status: 202 };
    }

    case "confirmResize": {
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        if (row.locked && !ctx.isAdmin) throw conflict(`Instance ${id} is locked`);
        if (row.vm_state !== "resized") throw conflict(conflictMessage("confirmResize", id, "vm_state", row.vm_state));
        if (row.task_state !== null) throw conflict(conflictMessage("confirmResize", id, "task_state", row.task_state));
        await dropMigrationAllocations(trx, row.migration_id);
        await applyEvent(trx, asState(row), { type: "resize_confirmed", restore_vm_state: row.old_vm_state ?? "active" }, {
          old_flavor: null,
          old_vm_state: null,
          migration_id: null,
        });
        await startAction(trx, { instanceId: id, action: "confirmResize", requestId, projectId: ctx.projectId, userId: ctx.userId });
        await recordEvent(trx, { instanceId: id, requestId, event: "api_confirm_resize", result: "Success", finishAction: true });
        const job: ComputeJob = { kind: "confirm_resize", request_id: requestId, instance: ref(row) };
        await enqueue(trx, { queue: computeQueueName(row.host!), name: job.kind, jobId: `confirm-${id}-${requestId}`, payload: job });
      });
      return { status: 204 };
    }

    case "revertResize": {
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        gate(row, ctx, "revert_resize");
        const source: SpawnSource = { ...(row as unknown as SpawnSource), flavor: row.old_flavor as SpawnSource["flavor"] };
        const spec = await specOf(trx, source, requestId, row.attempts);
        await dispatch(trx, ctx, requestId, row, "revert_resize", {
          kind: "revert_resize",
          request_id: requestId,
          spec,
          stopped: row.old_vm_state === "stopped",
        });
      });
      return { status: 202 };
    }

    case "createImage": {
      const c = body.createImage!;
      const imageId = newId();
      await db.transaction(async (trx) => {
        const row = await lockVisible(trx, ctx, id);
        gate(row, ctx, "snapshot");
        const base = (row.image ?? {}) as { properties?: Record<string, string>; disk_format?: string; min_ram?: number };
        await trx("images").insert({
          id: imageId,
          name: c.name,
          status: "queued",
          disk_format: "qcow2",
          container_format: "bare",
          min_disk: row.flavor.disk,
          min_ram: base.min_ram ?? 0,
          visibility: "private",
          owner: row.project_id,
          properties: JSON.stringify({
            ...(base.properties ?? {}),
            ...(c.metadata ?? {}),
            image_type: "snapshot",
            instance_uuid: id,
            base_image_ref: row.image_id ?? "",
            owner_user_name: ctx.userId,
          }),
        });
        await dispatch(trx, ctx, requestId, row, "snapshot", { kind: "snapshot", request_id: requestId, instance: ref(row), image_id: imageId });
      });
      return { status: 202, location: `${deps.publicUrl}/v2/images/${imageId}` };
    }

    case "os-getConsoleOutput": {
      const raw = body["os-getConsoleOutput"]?.length;
      const length = raw === undefined || raw === null ? null : Number(raw);
      if (length !== null && length < -1) throw badRequest(`Invalid input for field/attribute length. Value: ${raw}.`);
      const row: Row | undefined = await db("instances").where({ id }).whereNot("vm_state", "deleted").first();
      if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
      if (row.host === null || row.vm_state === "building") throw conflict(`Instance ${id} is not ready.`);
      if (!deps.rpc) throw new NovaError(503, "Console output is not available: this API has no queue connection.");
      let output: string;
      try {
        output = await deps.rpc.consoleOutput(row.host, ref(row), requestId);
      } catch (err) {
        throw new NovaError(503, `The compute host ${row.host} did not return the console output: ${(err as Error).message}`);
      }
      return { status: 200, body: { output: tailLines(output, length) } };
    }
  }
  throw badRequest("There is no such action: " + String(name));
}
