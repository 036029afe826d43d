import { Type } from "typebox";
import { Nullable } from "./common.js";

/** A compute service as os-services shows it at 2.1 (ids are UUIDs, as from 2.53). */
export const Service = Type.Object({
  id: Type.String(),
  binary: Type.String(),
  host: Type.String(),
  zone: Type.String(),
  status: Type.String(),
  state: Type.String(),
  updated_at: Nullable(Type.String()),
  disabled_reason: Nullable(Type.String()),
  forced_down: Type.Boolean(),
});
