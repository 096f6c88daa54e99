// The controller's side of secrets: the values of each release held in memory only, from the
// deploy that brought them. A controller that does not hold them (it restarted, or it took over a
// shared state) reads each source again at launch — the file, its own environment (`kiln up`'s),
// the command — and launches only when the keyed hash matches the release's: an instance never
// runs with values other than the ones its release was deployed with.

import { KilnError } from "../errors.js";
import { computeSecretsDigest } from "./digest.js";
import { resolveSecrets, type ResolveOptions, type SecretSource } from "./sources.js";

/** What a release records of its secrets (in ReleaseSettings): sources and digest, never values. */
export interface ReleaseSecrets {
  sources: Record<string, SecretSource>;
  /** computeSecretsDigest of the values under the home's key */
  digest: string;
}

export interface SecretKeeperOptions {
  key: () => Buffer;
  /** where fromEnv reads when a value is read again (default: this process's environment) */
  env?: NodeJS.ProcessEnv;
}

export class SecretKeeper {
  private readonly held = new Map<string, Record<string, string>>();
  private readonly o: SecretKeeperOptions;
  constructor(o: SecretKeeperOptions) {
    this.o = o;
  }

  /** Refuses values that are not the ones the release's digest names (another home's key, a tampered request). */
  check(secrets: ReleaseSecrets | undefined, values: Readonly<Record<string, string>> | undefined): void {
    if (!secrets) {
      if (values && Object.keys(values).length > 0) throw new KilnError("KILN_E_USAGE", "deploy: secret values were sent for a release that declares no secrets");
      return;
    }
    if (!values) return; // read from the sources at launch
    const names = Object.keys(values).sort().join(",");
    if (names !== Object.keys(secrets.sources).sort().join(",")) throw new KilnError("KILN_E_USAGE", "deploy: the secret values sent are not the release's secrets");
    if (computeSecretsDigest(this.o.key(), values) !== secrets.digest)
      throw new KilnError("KILN_E_USAGE", "deploy: the secrets' digest does not match their values under this controller's key", {
        hint: "the CLI and the controller use different KILN_HOMEs (each has its own secrets.key): run both with the same one",
      });
  }

  hold(release: string, values: Readonly<Record<string, string>>): void {
    this.held.set(release, { ...values });
  }

  /** The release's secret values for a launch; {} when it declares none. */
  async valuesFor(release: string, secrets: ReleaseSecrets | undefined): Promise<Record<string, string>> {
    if (!secrets || Object.keys(secrets.sources).length === 0) return {};
    const have = this.held.get(release);
    if (have) return have;
    const opts: ResolveOptions = { env: this.o.env ?? process.env, stderr: "ignore" };
    let values: Record<string, string>;
    try {
      values = await resolveSecrets(secrets.sources, opts);
    } catch (e) {
      throw new KilnError("KILN_E_PROVIDER", `release ${release}'s secrets are not held by this controller and cannot be read again: ${(e as Error).message}`, {
        hint: "a restarted controller reads fromFile again, fromEnv from `kiln up`'s environment and runs fromCommand again; make the source available to it, or deploy again",
      });
    }
    if (computeSecretsDigest(this.o.key(), values) !== secrets.digest)
      throw new KilnError("KILN_E_PROVIDER", `release ${release}'s secrets changed since it was deployed: their sources now give other values`, {
        hint: "deploy again: the new values make a new release (an instance never runs with values its release was not deployed with)",
      });
    this.held.set(release, values);
    return values;
  }
}
