// Shared plumbing for the Docker-backed providers (docker/, swarm/) and `kiln audit`:
// one way to reach the engine, one way to put a baked image into it, one way to turn
// engine errors into kiln errors.
//
// Images enter the engine by `docker load` of a docker-archive exported *untagged* from
// the store, so the engine knows them only by their image ID — the sha256 of the config
// blob, which the store already verified — and nothing can move a name under a running
// fleet. Callers run containers from that ID and label them with the manifest digest.

import Docker from "dockerode";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KilnError } from "../../errors.js";
import { exportImage, readImage, type Store } from "../../image/index.js";

export type { Docker };

/** The socket path from DOCKER_HOST (unix://…) or the default /var/run/docker.sock. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (!host) return "/var/run/docker.sock";
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  throw new KilnError("KILN_E_USAGE", `DOCKER_HOST=${host} is not a unix socket`, {
    hint: "kiln talks to a local Docker Engine over its unix socket: set DOCKER_HOST=unix:///path/docker.sock or unset it",
  });
}

/** A client for the engine; `ping` it to find out whether anything answers. */
export function connectDocker(socketPath = dockerSocketPath()): Docker {
  return new Docker({ socketPath });
}

/** Ping the engine, or throw a KilnError that says how to start one. */
export async function pingDocker(docker: Docker): Promise<void> {
  try {
    await docker.ping();
  } catch (e) {
    throw translateDockerError(e, "reach the Docker Engine");
  }
}

/** The engine's image ID for a manifest digest in the store: "sha256:<config digest hex>". */
export async function engineImageId(store: Store, digest: string): Promise<string> {
  const { manifest } = await readImage(store, digest);
  return manifest.config.digest;
}

/**
 * Make the image with manifest `digest` present in the engine and return its engine ID.
 * Idempotent: an image already loaded is not loaded again. Loads are untagged.
 */
export async function ensureImage(docker: Docker, store: Store, digest: string): Promise<string> {
  const id = await engineImageId(store, digest);
  if (await hasImage(docker, id)) return id;
  const dir = await mkdtemp(join(tmpdir(), "kiln-docker-load-"));
  try {
    const file = join(dir, "image.tar");
    await exportImage(store, digest, "docker-archive", file, { untagged: true });
    let stream: NodeJS.ReadableStream;
    try {
      stream = await docker.loadImage(createReadStream(file), { quiet: true });
    } catch (e) {
      throw translateDockerError(e, `load image ${digest}`);
    }
    const out = await new Promise<string>((resolve, reject) => {
      let body = "";
      stream.on("data", (c: Buffer) => (body += c.toString()));
      stream.on("end", () => resolve(body));
      stream.on("error", reject);
    });
    const err = /"error(?:Detail)?"\s*:\s*(?:\{"message":)?"([^"]+)"/.exec(out);
    if (err) throw new KilnError("KILN_E_PROVIDER", `Docker Engine refused image ${digest}: ${err[1]}`, { hint: "check the dockerd log; the image in the store verified" });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (!(await hasImage(docker, id))) {
    throw new KilnError("KILN_E_PROVIDER", `image ${digest} was loaded but the engine does not list ${id}`, { hint: "check the dockerd log" });
  }
  return id;
}

export async function hasImage(docker: Docker, id: string): Promise<boolean> {
  try {
    await docker.getImage(id).inspect();
    return true;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return false;
    throw translateDockerError(e, `inspect image ${id}`);
  }
}

/** Turn an engine/transport error into a KilnError with a hint. `doing` completes "could not …". */
export function translateDockerError(e: unknown, doing: string): KilnError {
  if (e instanceof KilnError) return e;
  const err = e as { statusCode?: number; code?: string; message?: string; json?: { message?: string } };
  const msg = err.json?.message ?? err.message ?? String(e);
  if (err.code === "ENOENT" || err.code === "ECONNREFUSED" || err.code === "EACCES") {
    return new KilnError("KILN_E_PROVIDER", `could not ${doing}: the Docker Engine is unreachable (${err.code})`, {
      hint: `start dockerd (e.g. \`scripts/services.sh\`) and point DOCKER_HOST at its socket (now ${process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock"})`,
    });
  }
  if (/port is already allocated|address already in use/i.test(msg)) {
    return new KilnError("KILN_E_PROVIDER", `could not ${doing}: a host port is taken (${msg.trim()})`, { hint: "another process holds the port; kiln picks a new one on the next launch" });
  }
  if (err.statusCode === 404 && /image/i.test(msg)) {
    return new KilnError("KILN_E_PROVIDER", `could not ${doing}: the engine has no such image (${msg.trim()})`, { hint: "kiln loads images by digest from its store: re-run the deploy, or `kiln bake` if the store lost it" });
  }
  return new KilnError("KILN_E_PROVIDER", `could not ${doing}: ${msg.trim()}`, { hint: "see the dockerd log for details" });
}
