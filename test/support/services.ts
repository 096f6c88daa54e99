// The system services integration tests use (Docker Engine, an OCI registry, PostgreSQL),
// found through the environment `scripts/services.sh` prints. A test that needs one calls
// the matching function: it returns the connection details, or skips the test with the
// reason printed — and fails it instead when KILN_REQUIRE_ALL=1 (CI), so a missing service
// can never pass CI silently.
//
//   eval "$(scripts/services.sh)"   # as root: starts dockerd, docker-registry, PostgreSQL

import type { TestContext } from "node:test";
import { spawnSync } from "node:child_process";

const requireAll = () => process.env.KILN_REQUIRE_ALL === "1";

function unavailable(t: TestContext, reason: string): undefined {
  const msg = `${reason} — run \`eval "$(scripts/services.sh)"\` as root first`;
  if (requireAll()) throw new Error(`KILN_REQUIRE_ALL=1 but ${msg}`);
  t.diagnostic(`skipped: ${msg}`);
  t.skip(msg);
  return undefined;
}

/** The Docker Engine socket path ("/run/…/docker.sock"), if DOCKER_HOST points at a live daemon. */
export function dockerSocket(t: TestContext): string | undefined {
  const host = process.env.DOCKER_HOST;
  if (!host?.startsWith("unix://")) return unavailable(t, "DOCKER_HOST is not set to a unix socket");
  const r = spawnSync("docker", ["version", "--format", "{{.Server.Version}}"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) return unavailable(t, `no Docker Engine answers at ${host}: ${(r.stderr || r.error?.message || "").trim()}`);
  return host.slice("unix://".length);
}

/** "127.0.0.1:PORT" of a running OCI registry (distribution), if KILN_TEST_REGISTRY names one. */
export async function registryAddress(t: TestContext): Promise<string | undefined> {
  const addr = process.env.KILN_TEST_REGISTRY;
  if (!addr) return unavailable(t, "KILN_TEST_REGISTRY is not set");
  try {
    const res = await fetch(`http://${addr}/v2/`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200 && res.status !== 401) return unavailable(t, `registry at ${addr} answered ${res.status}`);
  } catch (e) {
    return unavailable(t, `no registry answers at ${addr}: ${(e as Error).message}`);
  }
  return addr;
}

/** A PostgreSQL connection string (role may CREATE DATABASE), if KILN_TEST_PG is set. */
export function postgresUrl(t: TestContext): string | undefined {
  const url = process.env.KILN_TEST_PG;
  if (!url) return unavailable(t, "KILN_TEST_PG is not set");
  const r = spawnSync("psql", [url, "-tAc", "select 1"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) return unavailable(t, `PostgreSQL at ${url} does not answer: ${(r.stderr || r.error?.message || "").trim()}`);
  return url;
}
