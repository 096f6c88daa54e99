// Shared plumbing for the Docker-backed providers (docker/, swarm/) and `kiln audit`:
// one way to reach the engine, one way to put a baked image into it, one way to turn
// engine errors into kiln errors.
//
// Images enter the engine by `docker load` of a docker-archive exported *untagged* from
// the store, so the engine knows them only by their image ID — the sha256 of the config
// blob, which the store already verified — and nothing can move a name under a running
// fleet. Callers run containers from that ID and label them with the manifest digest.
// The archive carries only the layers the engine lacks: a new release of an app usually
// differs from the last one in its top layers, and the ~100 MB runtime base below them is
// already there (see layersToOmit).

import type Docker from "dockerode";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KilnError } from "../../errors.js";
import { readImage } from "../../image/images.js";
import type { Store } from "../../image/store.js";

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
  // Loaded here, not at import: the Docker client (with gRPC, protobuf and SSH underneath) is a
  // quarter second of CPU that verbs such as `kiln status` importing this module never use.
  const DockerClient = createRequire(import.meta.url)("dockerode") as typeof Docker;
  return new DockerClient({ socketPath });
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
 * The diff IDs of `image` whose files a docker-archive may leave out for an engine whose images
 * have the layer lists `engine`. Docker loads layer i from its file only when it lacks the chain
 * of layers 0..i, so what can be left out is the longest leading run of `image` that some engine
 * image starts with — except a diff ID that recurs above that run (its one file is needed there).
 *
 *   image [a,b,c], engine [[a,b,x]]        → {a,b}    the base and the next layer are there
 *   image [a,b,c], engine [[x,b,c], [a]]   → {a}      b alone is no use: its chain starts at x
 *   image [a,b,c], engine [[a,b,c]]        → {a,b,c}  a config-only change ships just the config
 *   image [a,b,a], engine [[a]]            → {}       a is needed again on top
 *   image [a,b],   engine []               → {}       an empty engine gets everything
 */
export function layersToOmit(image: readonly string[], engine: readonly (readonly string[])[]): Set<string> {
  let run = 0;
  for (const layers of engine) {
    let k = 0;
    while (k < image.length && k < layers.length && layers[k] === image[k]) k++;
    run = Math.max(run, k);
  }
  const above = new Set(image.slice(run));
  return new Set(image.slice(0, run).filter((d) => !above.has(d)));
}

/** engine image ID → its layer diff IDs, per engine client (an image ID names fixed content). */
const layerLists = new WeakMap<Docker, Map<string, string[]>>();

/** The layer lists of every image the engine holds (inspecting only images not seen before). */
export async function engineLayerLists(docker: Docker): Promise<string[][]> {
  let cache = layerLists.get(docker);
  if (!cache) layerLists.set(docker, (cache = new Map()));
  let images: Docker.ImageInfo[];
  try {
    images = await docker.listImages();
  } catch (e) {
    throw translateDockerError(e, "list the engine's images");
  }
  const out: string[][] = [];
  for (const img of images) {
    let layers = cache.get(img.Id);
    if (!layers) {
      try {
        layers = ((await docker.getImage(img.Id).inspect()).RootFS?.Layers ?? []) as string[];
      } catch {
        continue; // removed since the list: it offers nothing
      }
      cache.set(img.Id, layers);
    }
    out.push(layers);
  }
  return out;
}

export interface EnsureImageOptions {
  /** ship every layer even when the engine has some (default false) */
  full?: boolean;
  /** the engine's layer lists as the caller believes them (default: asked of the engine) */
  engineLayers?: string[][];
  /** told what a load shipped (not called when the engine already had the image) */
  onLoad?: (load: ImageLoad) => void;
}

export interface ImageLoad {
  layers: number;
  /** layers the archive left out because the engine held them */
  omitted: number;
  /** size of the archive the engine read (of the last attempt) */
  bytes: number;
  /** the partial load failed and the whole image was loaded instead */
  fellBack: boolean;
}

/**
 * Make the image with manifest `digest` present in the engine and return its engine ID.
 * Idempotent: an image already loaded is not loaded again. Loads are untagged, and leave out
 * the layers the engine already holds; should that fail (an image removed between the look and
 * the load took a layer with it), the whole image is loaded.
 */
export async function ensureImage(docker: Docker, store: Store, digest: string, opts: EnsureImageOptions = {}): Promise<string> {
  const { manifest, config } = await readImage(store, digest);
  const id = manifest.config.digest;
  if (await hasImage(docker, id)) return id;
  const omit = opts.full ? new Set<string>() : layersToOmit(config.rootfs.diff_ids, opts.engineLayers ?? (await engineLayerLists(docker)));
  let bytes: number;
  let fellBack = false;
  try {
    bytes = await loadArchive(docker, store, digest, omit);
  } catch (e) {
    if (omit.size === 0) throw e;
    fellBack = true;
    bytes = await loadArchive(docker, store, digest, new Set());
  }
  opts.onLoad?.({ layers: config.rootfs.diff_ids.length, omitted: fellBack ? 0 : omit.size, bytes, fellBack });
  if (!(await hasImage(docker, id))) {
    throw new KilnError("KILN_E_PROVIDER", `image ${digest} was loaded but the engine does not list ${id}`, { hint: "check the dockerd log" });
  }
  return id;
}

/** Loads the image (less `omitLayers`) into the engine; returns the archive's size. */
async function loadArchive(docker: Docker, store: Store, digest: string, omitLayers: ReadonlySet<string>): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-docker-load-"));
  try {
    const file = join(dir, "image.tar");
    // the exporter (tar streams) loads with the first image that enters an engine
    const { exportImage } = await import("../../image/export.js");
    const { size } = await exportImage(store, digest, "docker-archive", file, { untagged: true, omitLayers });
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
    return size;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
