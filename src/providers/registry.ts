// The composition root for providers: the only file that imports concrete backends.

import { closest } from "../config/suggest.js";
import { KilnError } from "../errors.js";
import { openStore, readImage, unpackRootfs } from "../image/index.js";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DockerProvider, removeServiceVolumes } from "./docker/index.js";
import { connectDocker } from "./docker/engine.js";
import { collectEngineGarbage, type EngineGcResult } from "./docker/engine-gc.js";
import { DEFAULT_UID_CLAIMS_DIR, DEFAULT_UID_RANGE, findPasta, LocalProvider, checkUidRange, parseSpawnThreads, parseStartupBoost, parseUidRange, probeBwrap, type UidRange } from "./local/index.js";
import type { Provider } from "./provider.js";
import { SwarmFleetProvider, connectManager, ensureManager } from "./swarm-fleet/index.js";
import type { SwarmSpec } from "../config/types.js";

/** Providers that run instances behind `kiln up` (the controller and the proxy on this machine). */
export const providerNames = ["local", "docker", "swarm"] as const;
export type ProviderName = (typeof providerNames)[number];

export interface ProviderOptions {
  home: string;
  sandbox?: "bwrap" | "none" | "auto";
  log?: (line: string) => void;
  /** kiln.yaml `swarm` (provider swarm); absent: the environment's manager and registry, defaults otherwise */
  swarm?: SwarmSpec;
  /** kiln.yaml drainTimeout (ms): provider swarm fixes each instance's stop grace period at launch from it */
  drainTimeout?: number;
}

/** The local provider's sandbox on this machine, for `kiln up` and `kiln doctor`: the bwrap found and what it lacks, or undefined. */
export const probeLocalSandbox = probeBwrap;

/** The pasta binary local instances' private networks need (Debian: passt), or undefined: they then share the host's network. */
export const probeLocalNetwork = findPasta;

export function isProviderName(name: string): name is ProviderName {
  return (providerNames as readonly string[]).includes(name);
}

/** Refuses what `kiln up` cannot run, with the way that can. */
export function checkProviderName(name: string): ProviderName {
  if (isProviderName(name)) return name;
  const near = closest(name, providerNames);
  throw new KilnError("KILN_E_USAGE", `unknown provider "${name}"`, { hint: `${near ? `did you mean "${near}"? ` : ""}use one of: ${providerNames.join(", ")}` });
}

/** `swarm.rollouts: native` hands rollouts to Swarm's update_config: there is no controller to start. */
export function refuseNativeSwarm(name: ProviderName, swarm: SwarmSpec | undefined): void {
  if (name === "swarm" && swarm?.rollouts === "native")
    throw new KilnError("KILN_E_USAGE", "kiln.yaml says `swarm: { rollouts: native }`: Swarm itself replaces the instances, so `kiln up` has nothing to run", {
      hint: "use `kiln deploy` directly (no `kiln up`), or remove `rollouts: native` to let kiln's controller drive the swarm",
    });
}

/** Throws a KilnError with a hint unless kiln.yaml's (or the environment's) Swarm manager answers as a manager. */
export async function checkSwarmManager(swarm: SwarmSpec | undefined): Promise<void> {
  await ensureManager(connectManager(swarm?.manager));
}

/** The environment's registry credentials (KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD), as `kiln push` reads them. */
function envCredentials(env: NodeJS.ProcessEnv): { username: string; password: string } | undefined {
  return env.KILN_REGISTRY_USERNAME && env.KILN_REGISTRY_PASSWORD !== undefined ? { username: env.KILN_REGISTRY_USERNAME, password: env.KILN_REGISTRY_PASSWORD } : undefined;
}

export function createProvider(name: string, opts: ProviderOptions): Provider {
  const kind = checkProviderName(name);
  refuseNativeSwarm(kind, opts.swarm);
  const store = openStore(opts.home);
  if (kind === "docker") return new DockerProvider({ docker: connectDocker(), store, logDir: join(opts.home, "instances") });
  if (kind === "swarm") {
    const env = process.env;
    const s = opts.swarm;
    return new SwarmFleetProvider({
      docker: connectManager(s?.manager, env),
      store,
      registry: s?.registry ?? (env.KILN_SWARM_REGISTRY || undefined),
      insecureRegistry: s?.insecureRegistry === true || env.KILN_SWARM_REGISTRY_INSECURE === "1",
      credentials: envCredentials(env),
      constraints: s?.constraints ?? [],
      spread: s?.spread ?? true,
      // The controller stops instances with at most 10 s of grace (instances.ts); Swarm needs it at launch.
      stopGraceMs: Math.min(opts.drainTimeout ?? 10_000, 10_000),
      logDir: join(opts.home, "instances"),
    });
  }
  return new LocalProvider({
    home: opts.home,
    sandbox: opts.sandbox ?? "auto",
    log: opts.log,
    uidRange: { range: localUidRange(), claimsDir: process.env.KILN_UID_CLAIMS_DIR || DEFAULT_UID_CLAIMS_DIR },
    startupBoost: parseStartupBoost(process.env.KILN_STARTUP_BOOST),
    spawnThreads: parseSpawnThreads(process.env.KILN_SPAWN_THREADS),
    rootfs: (digest) => unpackRootfs(store, digest),
    imageConfig: async (digest) => {
      const { config } = await readImage(store, digest);
      const c = (config as { config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; User?: string; WorkingDir?: string } }).config ?? {};
      return { env: c.Env ?? [], entrypoint: c.Entrypoint ?? [], cmd: c.Cmd ?? [], user: c.User ?? "1000:1000", workdir: c.WorkingDir ?? "/" };
    },
  });
}

/** Deletes the service's volumes (its state) where the provider keeps them: a clean slate for a demo. */
export async function discardVolumes(name: ProviderName, home: string, service: string): Promise<void> {
  if (name === "swarm") return; // provider swarm runs no declared volumes
  if (name === "docker") await removeServiceVolumes(connectDocker(), service);
  else rmSync(join(home, "volumes", service), { recursive: true, force: true });
}

/**
 * `kiln gc` on the provider's side: the images the Docker provider loaded into the engine that no
 * pin needs (undefined for a provider that keeps no images of its own). Run before the store's gc.
 */
export async function collectProviderImages(name: string, home: string, pins: readonly { digest: string; reasons: string[] }[], opts: { dryRun?: boolean } = {}): Promise<EngineGcResult | undefined> {
  if (name !== "docker") return undefined;
  return collectEngineGarbage(connectDocker(), openStore(home), pins, opts);
}

/** The local provider's uid range (issue 12): KILN_UID_RANGE=START-END, or the default. */
export function localUidRange(env: NodeJS.ProcessEnv = process.env): UidRange {
  const text = env.KILN_UID_RANGE;
  if (!text) return DEFAULT_UID_RANGE;
  const r = parseUidRange(text);
  if ("error" in r) throw new KilnError("KILN_E_USAGE", `KILN_UID_RANGE: ${r.error}`, { hint: "give START-END, e.g. KILN_UID_RANGE=880000000-880065535, or unset it for that default" });
  return r;
}

/**
 * Said at `kiln up` (root only: without root kiln cannot switch to the range's uids): the range
 * must be free of host accounts, groups and subordinate ranges.
 */
export function checkLocalUidRange(env: NodeJS.ProcessEnv = process.env): void {
  if (process.geteuid?.() !== 0) return;
  checkUidRange(localUidRange(env));
}
