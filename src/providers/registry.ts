// The composition root for providers: the only file that imports concrete backends.

import { KilnError } from "../errors.js";
import { openStore, readImage, unpackRootfs } from "../image/index.js";
import { LocalProvider } from "./local/index.js";
import type { Provider } from "./provider.js";

export const providerNames = ["local"] as const;
export type ProviderName = (typeof providerNames)[number];

export interface ProviderOptions {
  home: string;
  sandbox?: "bwrap" | "none" | "auto";
  log?: (line: string) => void;
}

export function createProvider(name: string, opts: ProviderOptions): Provider {
  if (name !== "local") throw new KilnError("KILN_E_USAGE", `unknown provider "${name}"`, { hint: `use one of: ${providerNames.join(", ")}` });
  const store = openStore(opts.home);
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
