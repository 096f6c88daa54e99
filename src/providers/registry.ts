// The composition root for providers: the only file that imports concrete backends.

import { KilnError } from "../errors.js";
import { openStore, readImage, unpackRootfs } from "../image/index.js";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DockerProvider, removeServiceVolumes } from "./docker/index.js";
import { connectDocker } from "./docker/engine.js";
import { collectEngineGarbage, type EngineGcResult } from "./docker/engine-gc.js";
import { LocalProvider } from "./local/index.js";
import type { Provider } from "./provider.js";

/** Providers that run instances behind `kiln up` (the controller and the proxy on this machine). */
export const providerNames = ["local", "docker"] as const;
export type ProviderName = (typeof providerNames)[number];

export interface ProviderOptions {
  home: string;
  sandbox?: "bwrap" | "none" | "auto";
  log?: (line: string) => void;
}

export function isProviderName(name: string): name is ProviderName {
  return (providerNames as readonly string[]).includes(name);
}

/** Refuses what `kiln up` cannot run, with the way that can. */
export function checkProviderName(name: string): ProviderName {
  if (isProviderName(name)) return name;
  if (name === "swarm")
    throw new KilnError("KILN_E_USAGE", 'provider "swarm" is not run by `kiln up`: Swarm itself replaces the instances', {
      hint: "use `kiln deploy` with `provider: swarm` in kiln.yaml (no `kiln up` needed); or choose --provider local|docker",
    });
  throw new KilnError("KILN_E_USAGE", `unknown provider "${name}"`, { hint: `use one of: ${providerNames.join(", ")}` });
}

export function createProvider(name: string, opts: ProviderOptions): Provider {
  const kind = checkProviderName(name);
  const store = openStore(opts.home);
  if (kind === "docker") return new DockerProvider({ docker: connectDocker(), store, logDir: join(opts.home, "instances") });
  return new LocalProvider({
    home: opts.home,
    sandbox: opts.sandbox ?? "auto",
    log: opts.log,
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
