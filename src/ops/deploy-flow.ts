// deploy / rollback as the CLI, the demo and the bench drive them: send the request, then follow the
// rollout (and the automatic rollback it may turn into) until it settles.

import { toReleaseSettings } from "../controller/release-settings.js";
import type { DeployRequest, ReleaseView, RolloutView } from "../controller/types.js";
import { KilnError } from "../errors.js";
// The image modules this needs, not the image barrel: that brings the baker and its compressor,
// which `kiln status` (through the controller performer) would load for nothing.
import { keyringDir } from "../image/gpg.js";
import { readImage, resolveRef } from "../image/images.js";
import { assertPolicy, evaluatePolicy, gatherPolicyFacts, policyIsEmpty, type PolicyVerdict } from "../image/policy.js";
import { openStore, type Store } from "../image/store.js";
import { isRegistryRef, parseRegistryRef, pullForDeploy, type BlobProgress } from "../image/registry/index.js";
import type { PolicySpec } from "../config/types.js";
import type { StrategyName } from "../rollout/types.js";
import { isUnknownRoute, type ControllerClient } from "../server/client.js";
import type { EventRecord } from "../state/db.js";
import { computeSecretsDigest, homeSecretKey, planSecretSources, resolveSecrets } from "../secrets/index.js";
import type { Workspace } from "./workspace.js";
import { readsThroughRestarts, type ReconnectPolicy } from "./reconnect.js";

export { readsThroughRestarts } from "./reconnect.js";

export type Outcome = "live" | "rolled-back" | "failed";

/** The longest one long poll of a watch waits (the watch's own timeout is checked between them). */
const WATCH_WAIT_MS = 1000;

export interface WatchResult {
  outcome: Outcome;
  release: ReleaseView;
  reason?: string;
  rollouts: RolloutView[];
}

/** `onPull` hears each blob of a registry reference's pull (the CLI shows it as progress). */
export async function buildDeployRequest(ctx: Pick<Workspace, "loaded" | "home">, ref: string | undefined, strategy?: StrategyName, onPull?: (p: BlobProgress) => void): Promise<DeployRequest> {
  const store = openStore(ctx.home);
  const wanted = ref ?? `${ctx.loaded.spec.name}:${ctx.loaded.spec.version}`;
  let digest: string;
  try {
    // A registry reference is pulled (every blob verified) and then deployed by its digest.
    digest = await resolveRef(store, ref !== undefined && isRegistryRef(ref) ? (await pullForDeploy(store, ref, process.env, onPull)).digest : wanted);
  } catch (e) {
    if (e instanceof KilnError && e.code === "KILN_E_NOT_FOUND" && ref === undefined) {
      throw new KilnError("KILN_E_NOT_FOUND", `image ${wanted} is not baked yet`, { hint: "run `kiln bake` first, or name an image: `kiln deploy NAME:VERSION`", cause: e });
    }
    throw e;
  }
  // The policy is checked on what was pulled (signatures and SBOM came with it) before anything is asked of the controller.
  const verdict = await checkDeployPolicy(store, digest, ctx.loaded.spec.policy, ref !== undefined && isRegistryRef(ref) ? ref : undefined);
  if (verdict) assertPolicy(verdict, ref ?? wanted);
  const { manifest } = await readImage(store, digest);
  const ann = (manifest as { annotations?: Record<string, string> }).annotations ?? {};
  const secrets = await deploySecrets(ctx);
  return {
    ref: wanted.startsWith("sha256:") ? `${ctx.loaded.spec.name}@${digest}` : wanted,
    version: ann["org.opencontainers.image.version"] ?? wanted.split(":").pop() ?? "unknown",
    digest,
    configHash: ctx.loaded.configHash,
    spec: { ...toReleaseSettings(ctx.loaded.spec), ...(secrets ? { secrets: secrets.release } : {}) },
    strategy,
    ...(secrets ? { secretValues: secrets.values } : {}),
  };
}

/**
 * kiln.yaml's secrets read now, on the deployer's side (their environment, files, commands), so a
 * missing one refuses the deploy before anything changes: the values go to the controller's memory
 * with the request; the release records only the sources and the keyed digest.
 */
export async function deploySecrets(ctx: Pick<Workspace, "loaded" | "home">): Promise<{ release: NonNullable<DeployRequest["spec"]["secrets"]>; values: Record<string, string> } | undefined> {
  if (Object.keys(ctx.loaded.spec.secrets).length === 0) return undefined;
  const sources = planSecretSources(ctx.loaded.spec.secrets, ctx.loaded.dir);
  const values = await resolveSecrets(sources, { env: process.env, stderr: "inherit" });
  return { release: { sources, digest: computeSecretsDigest(homeSecretKey(ctx.home), values) }, values };
}

/**
 * kiln.yaml's deploy policy on an image in the store; undefined when the
 * policy sets no rule. `registryRef`: the image was pulled from it, so only
 * signatures for its repository count.
 */
export async function checkDeployPolicy(store: Store, digest: string, policy: PolicySpec, registryRef?: string, now = new Date()): Promise<PolicyVerdict | undefined> {
  if (policyIsEmpty(policy)) return undefined;
  const from = registryRef === undefined ? undefined : parseRegistryRef(registryRef);
  const facts = await gatherPolicyFacts(store, digest, policy, keyringDir(store.root), from && { registry: from.registry, repository: from.repository });
  return evaluatePolicy(policy, facts, now);
}

export interface WatchOptions {
  onEvent?: (e: EventRecord) => void;
  timeoutMs?: number;
  afterEvent?: number;
  /** how long a controller restart may keep it unreachable (default DEFAULT_RECONNECT) */
  reconnect?: ReconnectPolicy;
  /** one line when the controller stops answering and one when it is back */
  onConnection?: (line: string) => void;
}

/**
 * Follow a rollout until it is no longer running; if it aborted, follow the rollback it
 * started. Every read waits out a controller restart (the rollout is in the controller's
 * state, and the restarted controller resumes it), so the outcome is the rollout's own.
 */
export async function watch(client: ControllerClient, first: RolloutView, opts: WatchOptions = {}): Promise<WatchResult> {
  const until = Date.now() + (opts.timeoutMs ?? 15 * 60_000);
  let after = opts.afterEvent ?? 0;
  const seen: RolloutView[] = [];
  let current = first;
  const read = readsThroughRestarts(opts);
  const c = {
    events: (n: number) => read(() => client.events(n)),
    rollout: (id: number) => read(() => client.rollout(id)),
    wait: (id: number, n: number) => read(() => client.waitRollout(id, n, WATCH_WAIT_MS)),
    history: () => read(() => client.history()),
  };
  const tell = (events: readonly EventRecord[]) => {
    for (const e of events) {
      after = e.id;
      opts.onEvent?.(e);
    }
  };
  const drain = async () => tell((await c.events(after)).events);
  // The controller's long poll; an older controller without it is polled every 150 ms instead.
  let longPoll = true;
  for (;;) {
    if (Date.now() > until) throw new KilnError("KILN_E_ROLLOUT", `rollout ${current.id} still running after the watch timeout`, { hint: "see `kiln status`; the controller keeps going" });
    let r: RolloutView;
    if (longPoll) {
      try {
        const w = await c.wait(current.id, after);
        tell(w.events);
        r = w.rollout;
      } catch (e) {
        if (!isUnknownRoute(e)) throw e;
        longPoll = false;
        continue;
      }
    } else {
      await new Promise((res) => setTimeout(res, 150));
      await drain();
      r = await c.rollout(current.id);
    }
    if (r.state === "running") continue;
    seen.push(r);
    if (r.state === "done") {
      const { releases } = await c.history();
      const rel = releases.find((x) => x.id === r.target)!;
      if (r.kind === "rollback" && seen.length > 1) {
        const failed = releases.find((x) => x.id === seen[0]!.target)!;
        await drain();
        return { outcome: "rolled-back", release: failed, reason: failed.reason ?? seen[0]!.reason, rollouts: seen };
      }
      await drain();
      return { outcome: "live", release: rel, rollouts: seen };
    }
    // Aborted: the controller starts a rollback rollout at once when one applies. It may be
    // over already (a rollback onto a fleet that never left rotation takes one tick), so it is
    // looked for in the history, not only as the running rollout.
    const { releases, rollouts } = await c.history();
    const rollback = rollouts.filter((x) => x.kind === "rollback" && x.id > r.id && x.previous === r.target).sort((a, b) => a.id - b.id)[0];
    if (rollback) {
      current = rollback;
      continue;
    }
    const rel = releases.find((x) => x.id === r.target)!;
    await drain();
    return { outcome: "failed", release: rel, reason: r.reason, rollouts: seen };
  }
}

export async function lastEventId(client: ControllerClient, opts: Pick<WatchOptions, "reconnect" | "onConnection"> = {}): Promise<number> {
  const read = readsThroughRestarts(opts);
  let after = 0;
  for (;;) {
    const { events } = await read(() => client.events(after));
    if (events.length === 0) return after;
    after = events[events.length - 1]!.id;
  }
}
