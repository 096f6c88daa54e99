// Delivers the controller's rollout events to kiln.yaml's webhooks, in the background.
//
// `send` only appends to a bounded in-memory queue per webhook and returns: the reconcile loop
// never waits on a receiver. One pump per webhook delivers its queue in order; a delivery is
// retried on no answer, 408, 429 and 5xx (retryDelay), up to `attempts` tries, then dropped
// with an error report. A full queue drops its oldest event (reported). A slow or dead receiver
// therefore delays only its own queue. The queue is not durable: events still queued when the
// controller stops are lost (said in the README).

import { randomUUID } from "node:crypto";
import type { WebhookSpec } from "../config/types.js";
import type { NotifyEvent } from "./event.js";
import { deliveryVerdict, jsonPayload, retryDelay, signatureHeaders, slackPayload } from "./payload.js";

export interface NotifierDeps {
  webhooks: WebhookSpec[];
  queueSize: number;
  /** the environment name (staging, production…), undefined where none is named */
  env?: string;
  /** the variables secretEnv names are read from (the controller's environment) */
  secrets?: NodeJS.ProcessEnv;
  /** a delivery given up, an event dropped: the controller records an error event */
  onError: (message: string) => void;
  /** a delivery done (for logs) */
  onDelivered?: (url: string, type: string, attempts: number) => void;
  random?: () => number;
  fetch?: typeof fetch;
}

interface Pending {
  id: string;
  event: NotifyEvent;
}

/** Where a URL is shown: scheme, host and path, never a query (a Slack URL's path holds its token, so it is cut). */
export function showUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname.length > 24 ? `${u.pathname.slice(0, 24)}…` : u.pathname;
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return "(invalid url)";
  }
}

class WebhookQueue {
  private readonly queue: Pending[] = [];
  private running = false;
  private dropped = 0;
  private readonly stopped: AbortController;

  constructor(
    private readonly hook: WebhookSpec,
    private readonly d: NotifierDeps,
    stopped: AbortController,
  ) {
    this.stopped = stopped;
  }

  wants(e: NotifyEvent): boolean {
    return this.hook.events.length === 0 || this.hook.events.includes(e.type);
  }

  push(p: Pending): void {
    if (this.queue.length >= this.d.queueSize) {
      this.queue.shift();
      this.dropped++;
      this.d.onError(`webhook ${showUrl(this.hook.url)}: queue full (${this.d.queueSize}): dropped the oldest event (${this.dropped} so far)`);
    }
    this.queue.push(p);
    if (!this.running) void this.pump();
  }

  /** waiting, plus the one being delivered */
  get size(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  /** The event being delivered is off the queue: a full queue drops the oldest waiting one, never it. */
  private current: Pending | undefined;

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.stopped.signal.aborted) {
        this.current = this.queue.shift()!;
        await this.deliver(this.current);
        this.current = undefined;
      }
    } finally {
      this.current = undefined;
      this.running = false;
    }
  }

  private async deliver(p: Pending): Promise<void> {
    const { hook } = this;
    const body = JSON.stringify(hook.format === "slack" ? slackPayload(p.event, this.d.env) : jsonPayload(p.id, p.event, this.d.env));
    const secret = hook.secretEnv ? (this.d.secrets ?? process.env)[hook.secretEnv] : undefined;
    let last = "";
    for (let attempt = 1; attempt <= hook.attempts; attempt++) {
      if (this.stopped.signal.aborted) return;
      const ts = Math.floor(Date.now() / 1000);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "kiln-webhooks/1",
        "x-kiln-event": p.event.type,
        "x-kiln-event-id": p.id,
        "x-kiln-timestamp": String(ts),
        "webhook-id": p.id,
        "webhook-timestamp": String(ts),
        ...(secret ? signatureHeaders(secret, p.id, ts, body) : {}),
      };
      let status: number | undefined;
      try {
        const res = await (this.d.fetch ?? fetch)(hook.url, {
          method: "POST", headers, body, redirect: "manual",
          signal: AbortSignal.any([this.stopped.signal, AbortSignal.timeout(hook.timeout)]),
        });
        status = res.status;
        await res.arrayBuffer().catch(() => undefined);
        last = `answered ${status}`;
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        last = err.name === "TimeoutError" ? `no answer within ${hook.timeout} ms` : (err.cause?.code ?? err.message);
      }
      const verdict = deliveryVerdict(status);
      if (verdict === "done") {
        this.d.onDelivered?.(hook.url, p.event.type, attempt);
        return;
      }
      if (verdict === "give-up" || attempt === hook.attempts) break;
      await sleep(retryDelay(attempt, hook.backoff, (this.d.random ?? Math.random)()), this.stopped.signal);
    }
    if (!this.stopped.signal.aborted) this.d.onError(`webhook ${showUrl(hook.url)}: gave up on ${p.event.type} (${p.id}) after ${hook.attempts === 1 ? "1 attempt" : "its attempts"}: ${last}`);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

export class WebhookNotifier {
  private readonly queues: WebhookQueue[];
  private readonly stopped = new AbortController();

  constructor(private readonly d: NotifierDeps) {
    this.queues = d.webhooks.map((w) => new WebhookQueue(w, d, this.stopped));
  }

  /** Queue the event for every webhook that wants it; returns at once. */
  send(event: NotifyEvent): void {
    if (this.stopped.signal.aborted) return;
    const id = `evt_${randomUUID()}`;
    for (const q of this.queues) if (q.wants(event)) q.push({ id, event });
  }

  /** Events waiting or being delivered, over every webhook. */
  pending(): number {
    return this.queues.reduce((n, q) => n + q.size, 0);
  }

  /** Stop: cancel deliveries in flight and waiting retries; queued events are dropped. */
  stop(): void {
    this.stopped.abort();
  }
}
