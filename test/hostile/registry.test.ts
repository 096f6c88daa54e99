// A hostile registry, served by this file on 127.0.0.1, with "another host"
// on 127.0.0.2: it hands out upload Locations and redirects to that host,
// names plain-HTTP token realms, lies about sizes, sends oversized bodies and
// stalls mid-body. Credentials must never reach the other host; every answer
// must end in a KilnError, quickly, with nothing stored.

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { canonicalBytes } from "../../src/image/digest.js";
import { pullImage, pushImage } from "../../src/image/registry/index.js";
import { openStore } from "../../src/image/store.js";
import { MEDIA_TYPE } from "../../src/image/types.js";
import { buildTinyBase, tempDir } from "../image/helpers.js";
import { hostileTar, kilnError, sha256 } from "./support.js";

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface Fake {
  host: string;
  /** every request: method, path, authorization header */
  seen: { method: string; url: string; auth?: string }[];
  server: Server;
}

async function serve(t: { after(fn: () => Promise<void> | void): void }, address: string, handler: Handler): Promise<Fake> {
  const seen: Fake["seen"] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((res) => server.listen(0, address, res));
  t.after(() => new Promise<void>((res) => {
    server.closeAllConnections();
    server.close(() => res());
  }));
  return { host: `${address}:${(server.address() as AddressInfo).port}`, seen, server };
}

const CREDS = { username: "kiln", password: "s3cret-registry-password" };
const BASIC = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString("base64")}`;

/** Answers like a registry that wants Basic auth; `route` decides the rest. */
function basicRegistry(route: (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean): Handler {
  return (req, res, body) => {
    if (req.headers.authorization !== BASIC) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="fake"' });
      return res.end();
    }
    if (req.url === "/v2/") {
      res.writeHead(200);
      return res.end();
    }
    if (!route(req, res, body)) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
    }
  };
}

test("push: an upload Location on another host gets the bytes but never the credentials", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const { store } = await buildTinyBase(join(dir, "store"));
  const other = await serve(t, "127.0.0.2", (req, res) => {
    res.writeHead(201, { "docker-content-digest": new URL(req.url!, "http://x").searchParams.get("digest") ?? "" });
    res.end();
  });
  const registry = await serve(t, "127.0.0.1", basicRegistry((req, res) => {
    if (req.method === "POST" && req.url!.endsWith("/blobs/uploads/")) {
      res.writeHead(202, { location: `http://${other.host}/upload/1` });
      res.end();
      return true;
    }
    if (req.method === "PUT" && req.url!.includes("/manifests/")) {
      res.writeHead(201);
      res.end();
      return true;
    }
    return false;
  }));
  await pushImage(store, "tiny:1", { registry: registry.host, repository: "hostile", tag: "1" }, { credentials: CREDS });
  assert.ok(other.seen.length > 0, "the uploads went to the other host");
  assert.deepEqual(other.seen.filter((r) => r.auth !== undefined), [], "no Authorization header reached the other host");
});

test("pull: a redirect to another host is followed without the credentials", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const src = await buildTinyBase(join(dir, "src"));
  const blobs = new Map<string, Buffer>();
  const manifestBytes = await src.store.readBlob(src.digest);
  const manifest = JSON.parse(manifestBytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) blobs.set(d, await src.store.readBlob(d));
  const cdn = await serve(t, "127.0.0.2", (req, res) => {
    const b = blobs.get(req.url!.slice(1));
    res.writeHead(b ? 200 : 404);
    res.end(b);
  });
  const registry = await serve(t, "127.0.0.1", basicRegistry((req, res) => {
    if (req.url!.includes("/manifests/")) {
      res.writeHead(200, { "content-type": MEDIA_TYPE.manifest });
      res.end(manifestBytes);
      return true;
    }
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url!);
    if (m) {
      res.writeHead(307, { location: `http://${cdn.host}/${m[1]}` });
      res.end();
      return true;
    }
    return false;
  }));
  const dest = openStore(join(dir, "dest"));
  const pulled = await pullImage(dest, { registry: registry.host, repository: "hostile", tag: "1" }, { credentials: CREDS });
  assert.equal(pulled.digest, src.digest);
  assert.ok(cdn.seen.length >= 3);
  assert.deepEqual(cdn.seen.filter((r) => r.auth !== undefined), [], "no Authorization header reached the other host");
});

test("a Bearer realm over plain HTTP on a non-loopback host is refused before any credential is sent", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const registry = await serve(t, "127.0.0.1", (_req, res) => {
    res.writeHead(401, { "www-authenticate": 'Bearer realm="http://tokens.example.invalid/token",service="x"' });
    res.end();
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }, { credentials: CREDS }), kilnError("KILN_E_REGISTRY", "not HTTPS"));
});

test("a 40 MiB chunked manifest is cut off at the cap, not read in full", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  let sent = 0;
  const registry = await serve(t, "127.0.0.1", (req, res) => {
    if (req.url === "/v2/") return res.end();
    res.writeHead(200, { "content-type": MEDIA_TYPE.manifest }); // chunked: no Content-Length
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (sent < 40 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      res.end();
    };
    res.on("close", () => undefined);
    pump();
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }), kilnError("KILN_E_UNSAFE", "larger than"));
  assert.ok(sent < 40 * 1024 * 1024, `the registry could not send it all (${sent} bytes)`);
  assert.deepEqual(await store.listTags(), []);
});

test("a 200 MiB error body is not read in full, and the error is still classified", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  let sent = 0;
  const registry = await serve(t, "127.0.0.1", (req, res) => {
    if (req.url === "/v2/") return res.end();
    res.writeHead(404, { "content-type": "application/json" });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (sent < 200 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }), (e: unknown) => kilnError((e as { code: string }).code)(e));
  assert.ok(sent < 100 * 1024 * 1024, `the error body was abandoned early (${sent} bytes sent)`);
});

test("a manifest body that stalls is aborted after the idle timeout", { timeout: 20_000 }, async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const registry = await serve(t, "127.0.0.1", (req, res) => {
    if (req.url === "/v2/") return res.end();
    res.writeHead(200, { "content-type": MEDIA_TYPE.manifest, "content-length": "1000" });
    res.write('{"schemaVersion":2,'); // …and nothing more
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }, { idleTimeoutMs: 300 }), kilnError("KILN_E_REGISTRY", "stopped sending"));
});

test("a manifest that declares a 1 GiB config is refused before anything is fetched", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const manifest = canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, digest: sha256("x"), size: 1024 ** 3 }, layers: [] });
  const registry = await serve(t, "127.0.0.1", (req, res) => {
    if (req.url === "/v2/") return res.end();
    if (req.url!.includes("/manifests/")) {
      res.writeHead(200, { "content-type": MEDIA_TYPE.manifest });
      return res.end(manifest);
    }
    res.writeHead(500);
    res.end();
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }), kilnError("KILN_E_UNSAFE", "config"));
  assert.equal(registry.seen.filter((r) => r.url.includes("/blobs/")).length, 0);
});

test("pull refuses an image whose layer escapes its root; the manifest is not stored", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const layerTar = await hostileTar([{ name: "../../outside/pwned", body: "x" }]);
  const layer = gzipSync(layerTar);
  const config = canonicalBytes({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha256(layerTar)] } });
  const manifest = canonicalBytes({
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    config: { mediaType: MEDIA_TYPE.config, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MEDIA_TYPE.layerGzip, digest: sha256(layer), size: layer.length }],
  });
  const blobs = new Map([[sha256(config), config], [sha256(layer), layer]]);
  const registry = await serve(t, "127.0.0.1", (req, res) => {
    if (req.url === "/v2/") return res.end();
    if (req.url!.includes("/manifests/")) {
      res.writeHead(200, { "content-type": MEDIA_TYPE.manifest });
      return res.end(manifest);
    }
    const b = blobs.get(req.url!.split("/").pop()!);
    res.writeHead(b ? 200 : 404);
    res.end(b);
  });
  const store = openStore(join(dir, "store"));
  await assert.rejects(pullImage(store, { registry: registry.host, repository: "hostile", tag: "1" }, { tag: "hostile:1" }), kilnError("KILN_E_UNSAFE", "component"));
  assert.equal(await store.hasBlob(sha256(manifest)), false, "the manifest was not stored");
  assert.deepEqual(await store.listTags(), []);
});
