// Webhook payloads, signatures and the retry schedule, as pure functions.

import { createHmac } from "node:crypto";
import type { NotifyEvent } from "./event.js";

/** The JSON document a webhook receives (format json). `id` is the same on every retry: dedupe on it. */
export function jsonPayload(id: string, e: NotifyEvent, env: string | undefined): Record<string, unknown> {
  return {
    id,
    type: e.type,
    timestamp: new Date(e.at).toISOString(),
    service: e.service,
    env: env ?? null,
    message: e.message,
    ...(e.rollout ? { rollout: e.rollout } : {}),
    ...(e.release ? { release: e.release } : {}),
    ...(e.previous ? { previous: e.previous } : {}),
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
    ...(e.instances ? { instances: e.instances } : {}),
  };
}

/**
 * A Slack-compatible payload (incoming webhooks take {"text": …}).
 *
 *   rollout.live of hello r3 (2.0.0), "release live: r3"   → {"text": "[hello] rollout.live: release live: r3 (2.0.0, sha256:0123456789ab)"}
 *   rollout.aborted with reason "health"                     → {"text": "[hello] rollout.aborted: … — health"}
 */
export function slackPayload(e: NotifyEvent, env: string | undefined): { text: string } {
  const where = env ? `${e.service}/${env}` : e.service;
  const rel = e.release ? ` (${e.release.version}, ${e.release.digest.slice(0, 19)})` : "";
  const why = e.reason && !e.message.includes(e.reason) ? ` — ${e.reason}` : "";
  return { text: `[${where}] ${e.type}: ${e.message}${rel}${why}` };
}

/**
 * The signature headers of one delivery of `body` (the exact bytes sent):
 * X-Kiln-Signature-256 is "sha256=" + hex HMAC-SHA256(secret, body) (GitHub's scheme);
 * webhook-signature is "v1," + base64 HMAC-SHA256(secret, "id.timestamp.body") (Standard Webhooks),
 * which also binds the timestamp against replays.
 *
 *   secret "It's a Secret to Everybody", body "Hello, World!"
 *     → X-Kiln-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
 */
export function signatureHeaders(secret: string, id: string, timestampS: number, body: string): Record<string, string> {
  const hex = createHmac("sha256", secret).update(body).digest("hex");
  const std = createHmac("sha256", secret).update(`${id}.${timestampS}.${body}`).digest("base64");
  return { "x-kiln-signature-256": `sha256=${hex}`, "webhook-signature": `v1,${std}` };
}

export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/**
 * Wait before retry number `retry` (1 = the first retry): the backoff doubled each time, at most
 * 5 minutes, less up to a quarter at random (`random` in [0, 1)) so receivers coming back are not
 * hit by every sender at once.
 *
 *   retry 1, backoff 2 s, random 0    → 2,000 ms
 *   retry 3, backoff 2 s, random 0    → 8,000 ms
 *   retry 3, backoff 2 s, random 0.5  → 7,000 ms
 *   retry 20, backoff 2 s, random 0   → 300,000 ms (the cap)
 */
export function retryDelay(retry: number, backoffMs: number, random: number): number {
  const base = Math.min(backoffMs * 2 ** Math.min(retry - 1, 30), MAX_RETRY_DELAY_MS);
  return Math.round(base * (1 - 0.25 * random));
}

/**
 * Whether a delivery that got `status` (undefined: no answer — refused, reset, timed out) is
 * tried again: no answer, 408, 429 and 5xx are; 2xx is done; any other answer is final.
 *
 *   undefined → retry   500 → retry   429 → retry   200 → done   404 → give up   410 → give up
 */
export function deliveryVerdict(status: number | undefined): "done" | "retry" | "give-up" {
  if (status === undefined) return "retry";
  if (status >= 200 && status < 300) return "done";
  if (status === 408 || status === 429 || status >= 500) return "retry";
  return "give-up";
}
