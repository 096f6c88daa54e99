// What the controller tells webhooks about: one event of a rollout or of the fleet. Types only:
// the controller emits these, the notifier (webhooks.ts) delivers them.

import type { NotifyEventName } from "../config/types.js";

export type { NotifyEventName };

export interface NotifyRelease {
  id: string;
  version: string;
  ref: string;
  digest: string;
}

export interface NotifyEvent {
  type: NotifyEventName;
  /** epoch ms when it happened */
  at: number;
  service: string;
  /** one sentence for people (Slack's text, logs) */
  message: string;
  rollout?: { id: number; kind: "deploy" | "rollback"; strategy: string; target: string; previous?: string };
  /** the release the event is about (a rollout's target, the live release a heal relaunches) */
  release?: NotifyRelease;
  /** the release that was live before (a rollout's previous) */
  previous?: NotifyRelease;
  reason?: string;
  instances?: string[];
}
