import { describe, expect, it } from "vitest";
import { Histogram, Registry } from "prom-client";
import { RequestHistogram } from "../../common/request-histogram.js";

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const observations: [string, string, number, number][] = [
  ["POST", "/v2.1/servers", 202, 0.004],
  ["POST", "/v2.1/servers", 202, 0.005], // on a bound: counted in that bucket
  ["POST", "/v2.1/servers", 202, 0.0051],
  ["POST", "/v2.1/servers", 400, 0.002],
  ["GET", "/v2.1/servers/:server_id", 200, 0.3],
  ["GET", "/v2.1/servers/:server_id", 200, 12], // above every bound: only +Inf
  ["GET", "unmatched", 404, 0.0001],
];

function registries() {
  const ours = new Registry();
  ours.setDefaultLabels({ service: "api" });
  const theirs = new Registry();
  theirs.setDefaultLabels({ service: "api" });
  const help = "API request latency";
  const fast = new RequestHistogram("h_seconds", help, BOUNDS, ours);
  const reference = new Histogram({ name: "h_seconds", help, labelNames: ["method", "route", "status_code"], buckets: BOUNDS, registers: [theirs] });
  for (const [method, route, status, s] of observations) {
    fast.observe(method, route, status, s);
    reference.observe({ method, route, status_code: status }, s);
  }
  return { ours, theirs, fast };
}

describe("RequestHistogram", () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const { ours, theirs } = registries();
    const lines = (text: string) => text.split("\n").sort();
    expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
    expect(await ours.metrics()).toContain('h_seconds_bucket{le="0.005",service="api",method="POST",route="/v2.1/servers",status_code="202"} 2');
  });

  it("is emptied by the registry's reset", async () => {
    const { ours } = registries();
    ours.resetMetrics();
    expect(await ours.metrics()).not.toContain("h_seconds_bucket");
  });
});
