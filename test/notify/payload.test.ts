// Webhook payloads, signatures and the retry schedule: rows are the doc comments' worked examples.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import type { NotifyEvent } from "../../src/notify/event.js";
import { deliveryVerdict, jsonPayload, retryDelay, signatureHeaders, slackPayload } from "../../src/notify/payload.js";

const live: NotifyEvent = {
  type: "rollout.live", at: Date.UTC(2026, 11, 2), service: "hello", message: "release live: r3",
  rollout: { id: 4, kind: "deploy", strategy: "rolling", target: "r3", previous: "r2" },
  release: { id: "r3", version: "2.0.0", ref: "hello:2.0.0", digest: "sha256:0123456789abcdef" },
};

describe("signatureHeaders", () => {
  it("GitHub's published test vector for X-Kiln-Signature-256", () => {
    const h = signatureHeaders("It's a Secret to Everybody", "evt_1", 1700000000, "Hello, World!");
    assert.equal(h["x-kiln-signature-256"], "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  });
  it("webhook-signature binds id and timestamp (Standard Webhooks: v1,base64 of id.timestamp.body)", () => {
    const h = signatureHeaders("k", "evt_1", 1700000000, "{}");
    assert.equal(h["webhook-signature"], `v1,${createHmac("sha256", "k").update("evt_1.1700000000.{}").digest("base64")}`);
    assert.notEqual(signatureHeaders("k", "evt_1", 1700000001, "{}")["webhook-signature"], h["webhook-signature"]);
  });
});

describe("payloads", () => {
  it("json: the event id, type, time, service, env and the release", () => {
    assert.deepEqual(jsonPayload("evt_9", live, undefined), {
      id: "evt_9", type: "rollout.live", timestamp: "2026-12-02T00:00:00.000Z", service: "hello", env: null, message: "release live: r3",
      rollout: live.rollout, release: live.release,
    });
    assert.equal(jsonPayload("evt_9", live, "staging").env, "staging");
  });
  it("slack: one text line", () => {
    assert.deepEqual(slackPayload(live, undefined), { text: "[hello] rollout.live: release live: r3 (2.0.0, sha256:0123456789ab)" });
    assert.deepEqual(slackPayload({ ...live, type: "rollout.aborted", message: "deploy to r3 aborted", reason: "health", release: undefined }, "prod"), {
      text: "[hello/prod] rollout.aborted: deploy to r3 aborted — health",
    });
  });
});

describe("retryDelay", () => {
  const rows: [retry: number, backoff: number, random: number, ms: number][] = [
    [1, 2000, 0, 2000],
    [3, 2000, 0, 8000],
    [3, 2000, 0.5, 7000],
    [20, 2000, 0, 300_000],
  ];
  for (const [retry, backoff, random, ms] of rows) it(`retry ${retry}, backoff ${backoff}, random ${random} → ${ms}`, () => assert.equal(retryDelay(retry, backoff, random), ms));
});

describe("deliveryVerdict", () => {
  const rows: [status: number | undefined, verdict: string][] = [[undefined, "retry"], [500, "retry"], [429, "retry"], [200, "done"], [404, "give-up"], [410, "give-up"]];
  for (const [status, verdict] of rows) it(`${status} → ${verdict}`, () => assert.equal(deliveryVerdict(status), verdict));
});
