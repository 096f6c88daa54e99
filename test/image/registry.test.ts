// Unit tests of the registry client: reference and challenge parsing (tables),
// and push/pull against a tiny token-auth registry served by this file on
// 127.0.0.1 (the real distribution registry runs in integration/registry.test.ts).

import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { credentialsFrom } from "../../src/ops/credentials.js";
import { KilnError } from "../../src/errors.js";
import { ociArchitecture } from "../../src/image/compose.js";
import { canonicalBytes } from "../../src/image/digest.js";
import { RegistryClient } from "../../src/image/registry/client.js";
import { parseChallenges } from "../../src/image/registry/challenge.js";
import { pullImage, pushImage } from "../../src/image/registry/index.js";
import { formatRegistryRef, isRegistryRef, parseRegistryRef, registryBaseUrl } from "../../src/image/registry/reference.js";
import { openStore } from "../../src/image/store.js";
import { MEDIA_TYPE } from "../../src/image/types.js";
import { buildTinyBase, tempDir } from "./helpers.js";

const D = "sha256:" + "a".repeat(64);

test("registry references: parse and format", () => {
  const cases: [string, ReturnType<typeof parseRegistryRef>][] = [
    ["127.0.0.1:5000/hello", { registry: "127.0.0.1:5000", repository: "hello" }],
    ["127.0.0.1:5000/hello:1.0.0", { registry: "127.0.0.1:5000", repository: "hello", tag: "1.0.0" }],
    [`127.0.0.1:5000/hello@${D}`, { registry: "127.0.0.1:5000", repository: "hello", digest: D }],
    [`localhost/team/hello:v2@${D}`, { registry: "localhost", repository: "team/hello", tag: "v2", digest: D }],
    ["ghcr.io/acme/shop-api/web:2.1.0_rc-1", { registry: "ghcr.io", repository: "acme/shop-api/web", tag: "2.1.0_rc-1" }],
    ["[::1]:5000/hello:x", { registry: "[::1]:5000", repository: "hello", tag: "x" }],
    ["registry.example.com:443/a__b/c.d:latest", { registry: "registry.example.com:443", repository: "a__b/c.d", tag: "latest" }],
  ];
  for (const [s, want] of cases) assert.deepEqual(parseRegistryRef(s), want, s);
  assert.equal(formatRegistryRef(parseRegistryRef(`localhost/team/hello:v2@${D}`)), `localhost/team/hello@${D}`);
  assert.equal(formatRegistryRef(parseRegistryRef("ghcr.io/a/b:1")), "ghcr.io/a/b:1");

  const bad: [string, RegExp][] = [
    ["hello:1.0.0", /does not start with a registry host/],
    ["team/hello:1", /does not start with a registry host/],
    ["127.0.0.1:5000/Hello", /bad repository/],
    ["127.0.0.1:5000/hello:", /bad tag/],
    ["127.0.0.1:5000/hello:-x", /bad tag/],
    ["127.0.0.1:5000/hello@sha256:abc", /bad digest/],
    ["127.0.0.1:5000/hello@md5:" + "a".repeat(32), /bad digest/],
    ["127.0.0.1:5000/", /bad repository/],
    ["bad_host.io/x", /bad registry host/],
  ];
  for (const [s, re] of bad) {
    assert.throws(() => parseRegistryRef(s), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && re.test(e.message) && !!e.hint, s);
  }
});

test("registry references: which strings are registry references, and which scheme each gets", () => {
  for (const s of ["127.0.0.1:5000/hello", "localhost/x", "ghcr.io/a/b", "[::1]/x", "host:5000/x"]) assert.equal(isRegistryRef(s), true, s);
  for (const s of ["hello:1.0.0", "team/app:2", "sha256:" + "a".repeat(64), "hello@" + D, "abcdef012345"]) assert.equal(isRegistryRef(s), false, s);
  assert.equal(registryBaseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(registryBaseUrl("127.3.4.5:5000"), "http://127.3.4.5:5000");
  assert.equal(registryBaseUrl("localhost:5000"), "http://localhost:5000");
  assert.equal(registryBaseUrl("[::1]:5000"), "http://[::1]:5000");
  assert.equal(registryBaseUrl("ghcr.io"), "https://ghcr.io");
  assert.equal(registryBaseUrl("127.0.0.1.example.com"), "https://127.0.0.1.example.com");
  assert.equal(registryBaseUrl("10.0.0.5:5000"), "https://10.0.0.5:5000");
  assert.equal(registryBaseUrl("10.0.0.5:5000", true), "http://10.0.0.5:5000");
});

test("WWW-Authenticate challenges", () => {
  const cases: [string, ReturnType<typeof parseChallenges>][] = [
    ['Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull"',
      [{ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/node:pull" } }],
    ],
    [
      'Bearer realm="https://a/t", scope="repository:x:pull,push", error="insufficient_scope"',
      [{ scheme: "bearer", params: { realm: "https://a/t", scope: "repository:x:pull,push", error: "insufficient_scope" } }],
    ],
    ['bearer REALM=https://a/t,Service=s', [{ scheme: "bearer", params: { realm: "https://a/t", service: "s" } }]],
    [
      'Negotiate abc==, Basic realm="x, \\"quoted\\"", Bearer realm="https://t"',
      [
        { scheme: "negotiate", params: {} },
        { scheme: "basic", params: { realm: 'x, "quoted"' } },
        { scheme: "bearer", params: { realm: "https://t" } },
      ],
    ],
    ["", []],
    ["Basic", [{ scheme: "basic", params: {} }]],
  ];
  for (const [h, want] of cases) assert.deepEqual(parseChallenges(h), want, h);
});

test("credentials: --username with --password-stdin or KILN_REGISTRY_PASSWORD, or both environment variables, or none", async () => {
  assert.equal(await credentialsFrom({}, {}), undefined);
  assert.deepEqual(await credentialsFrom({}, { KILN_REGISTRY_USERNAME: "u", KILN_REGISTRY_PASSWORD: "p" }), { username: "u", password: "p" });
  assert.deepEqual(await credentialsFrom({ username: "cli" }, { KILN_REGISTRY_USERNAME: "u", KILN_REGISTRY_PASSWORD: "p" }), { username: "cli", password: "p" });
  const usage = (re: RegExp) => (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && re.test(e.message) && !!e.hint;
  await assert.rejects(credentialsFrom({ username: "cli" }, {}), usage(/--username needs a password/));
  await assert.rejects(credentialsFrom({ passwordStdin: true }, {}), usage(/--password-stdin needs a username/));
  await assert.rejects(credentialsFrom({}, { KILN_REGISTRY_USERNAME: "u" }), usage(/set both/));
});

// ---------------------------------------------------------------------------
// A token-auth registry in ~100 lines: the distribution API endpoints kiln uses,
// blobs and manifests in memory, Bearer tokens from /token for alice:secret.

interface FakeRegistry {
  port: number;
  addr: string;
  blobs: Map<string, Buffer>;
  manifests: Map<string, { type: string; body: Buffer }>;
  tokenRequests: { scopes: string[]; user?: string }[];
  patches: number;
  /** digests whose GET returns altered bytes */
  tamper: Set<string>;
}

const sha = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

async function fakeRegistry(t: { after(fn: () => unknown): void }): Promise<FakeRegistry> {
  const reg: FakeRegistry = { port: 0, addr: "", blobs: new Map(), manifests: new Map(), tokenRequests: [], patches: 0, tamper: new Set() };
  const tokens = new Map<string, string[]>();
  const uploads = new Map<string, Buffer>();
  const linked = new Set<string>();
  const body = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(value));
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url!, `http://${reg.addr}`);
    if (url.pathname === "/token") {
      const auth = req.headers.authorization;
      const user = auth?.startsWith("Basic ") ? Buffer.from(auth.slice(6), "base64").toString() : undefined;
      const scopes = url.searchParams.getAll("scope");
      reg.tokenRequests.push({ scopes, user });
      if (user !== "alice:secret") return json(res, 401, { errors: [{ code: "UNAUTHORIZED" }] });
      const token = randomUUID();
      tokens.set(token, scopes);
      return json(res, 200, { token, expires_in: 300 });
    }
    const m = /^\/v2\/(?:(.+?)\/(?:(blobs\/uploads)\/?(.*)|blobs\/(.+)|manifests\/(.+)))?$/.exec(url.pathname);
    if (!m) return json(res, 404, { errors: [{ code: "NOT_FOUND" }] });
    const [, repo, upload, uploadId, blobDigest, manifestRef] = m;
    const granted = tokens.get((req.headers.authorization ?? "").replace(/^Bearer /, ""));
    const need = req.method === "GET" || req.method === "HEAD" ? "pull" : "push";
    if (!granted || (repo && !granted.some((s) => s.startsWith(`repository:${repo}:`) && s.split(":")[2]!.split(",").includes(need)))) {
      return json(res, 401, { errors: [{ code: "UNAUTHORIZED" }] }, {
        "www-authenticate": `Bearer realm="http://${reg.addr}/token",service="fake"${repo ? `,scope="repository:${repo}:${need}"` : ""}`,
      });
    }
    if (!repo) return json(res, 200, {});
    if (upload !== undefined) {
      if (req.method === "POST") {
        const id = randomUUID();
        uploads.set(id, Buffer.alloc(0));
        res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${id}` }).end();
        return;
      }
      const have = uploads.get(uploadId!);
      if (have === undefined) return json(res, 404, { errors: [{ code: "BLOB_UPLOAD_UNKNOWN" }] });
      const data = await body(req);
      if (req.method === "PATCH") {
        reg.patches++;
        const range = /^(\d+)-(\d+)$/.exec(String(req.headers["content-range"]));
        if (!range || Number(range[1]) !== have.length || Number(range[2]) !== have.length + data.length - 1) return json(res, 416, {});
        uploads.set(uploadId!, Buffer.concat([have, data]));
        res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${uploadId}`, range: `0-${have.length + data.length - 1}` }).end();
        return;
      }
      const all = Buffer.concat([have, data]);
      const digest = url.searchParams.get("digest");
      if (sha(all) !== digest) return json(res, 400, { errors: [{ code: "DIGEST_INVALID" }] });
      reg.blobs.set(digest, all);
      linked.add(`${repo}@${digest}`);
      uploads.delete(uploadId!);
      res.writeHead(201, { "docker-content-digest": digest, location: `/v2/${repo}/blobs/${digest}` }).end();
      return;
    }
    if (blobDigest !== undefined) {
      // Blobs are linked per repository, as in distribution: another repository's blob is "unknown" here.
      const b = linked.has(`${repo}@${blobDigest}`) ? reg.blobs.get(blobDigest) : undefined;
      if (!b) return json(res, 404, { errors: [{ code: "BLOB_UNKNOWN" }] });
      const out = reg.tamper.has(blobDigest) ? Buffer.from(b.toString("latin1").replace(/./, "X"), "latin1") : b;
      res.writeHead(200, { "content-length": String(out.length), "docker-content-digest": blobDigest });
      res.end(req.method === "HEAD" ? undefined : out);
      return;
    }
    const key = `${repo}:${manifestRef}`;
    if (req.method === "PUT") {
      const data = await body(req);
      reg.manifests.set(key, { type: String(req.headers["content-type"]), body: data });
      reg.manifests.set(`${repo}:${sha(data)}`, { type: String(req.headers["content-type"]), body: data });
      res.writeHead(201, { "docker-content-digest": sha(data) }).end();
      return;
    }
    const man = reg.manifests.get(key);
    if (!man) return json(res, 404, { errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] });
    res.writeHead(200, { "content-type": man.type, "docker-content-digest": sha(man.body), "content-length": String(man.body.length) });
    res.end(req.method === "HEAD" ? undefined : man.body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  reg.port = (server.address() as AddressInfo).port;
  reg.addr = `127.0.0.1:${reg.port}`;
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return reg;
}

const alice = { username: "alice", password: "secret" };

test("Bearer registry: push (monolithic, then chunked) and pull give one digest; one token per scope", async (t) => {
  const dir = await tempDir(t);
  const reg = await fakeRegistry(t);
  const { store, digest } = await buildTinyBase(join(dir, "src"));

  const first = await pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/team/tiny`), { credentials: alice });
  assert.equal(first.digest, digest);
  assert.equal(first.reference, `${reg.addr}/team/tiny@${digest}`);
  assert.equal(first.tagReference, `${reg.addr}/team/tiny:1`, "default tag: the image's version");
  assert.deepEqual({ ...first.blobs, bytesTransferred: 0 }, { transferred: 3, skipped: 0, bytesTransferred: 0, bytesSkipped: 0, chunked: 0 });
  assert.deepEqual(reg.tokenRequests, [{ scopes: ["repository:team/tiny:pull,push"], user: "alice:secret" }], "one token, cached for every request");
  assert.equal(reg.manifests.get(`team/tiny:1`)!.body.equals(await store.readBlob(digest)), true, "the registry holds kiln's manifest bytes");
  assert.equal(reg.manifests.get(`team/tiny:1`)!.type, MEDIA_TYPE.manifest);

  const again = await pushImage(store, digest, parseRegistryRef(`${reg.addr}/team/tiny:again`), { credentials: alice });
  assert.equal(again.blobs.transferred, 0);
  assert.equal(again.blobs.skipped, 3, "a re-push uploads no blob the registry has");

  const progress: string[] = [];
  const chunked = await pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/other:c`), {
    credentials: alice,
    chunkThreshold: 100,
    chunkSize: 64,
    onProgress: (p) => progress.push(p.state),
  });
  assert.ok(chunked.blobs.chunked >= 1, "blobs above the threshold go up in chunks");
  assert.ok(reg.patches > chunked.blobs.chunked, "more than one PATCH per chunked blob");
  assert.equal(progress.filter((s) => s === "done").length, 3);
  assert.deepEqual(reg.tokenRequests.map((r) => r.scopes.join(" ")), ["repository:team/tiny:pull,push", "repository:team/tiny:pull,push", "repository:other:pull,push"]);

  const fresh = openStore(join(dir, "fresh"));
  const pulled = await pullImage(fresh, parseRegistryRef(`${reg.addr}/other:c`), { credentials: alice, tag: "tiny:1" });
  assert.equal(pulled.digest, digest);
  assert.equal(pulled.tagged?.result, "created");
  assert.equal(pulled.blobs.transferred, 3);
  assert.equal((await fresh.lookupTag("tiny:1"))?.digest, digest);
  for (const b of reg.blobs.keys()) assert.equal(await fresh.hasBlob(b), true);
  assert.deepEqual(reg.tokenRequests.at(-1)?.scopes, ["repository:other:pull"], "a pull asks only for pull");

  const byDigest = await pullImage(fresh, parseRegistryRef(`${reg.addr}/other@${digest}`), { credentials: alice });
  assert.equal(byDigest.blobs.skipped, 3, "blobs already in the store are not fetched again");
});

test("Bearer registry: tokens are cached per scope until they expire", async (t) => {
  const reg = await fakeRegistry(t);
  let now = 1_000_000;
  const client = new RegistryClient({ registry: reg.addr, repository: "x", action: "pull", credentials: alice, now: () => now });
  for (let i = 0; i < 3; i++) await client.request("HEAD", `blobs/${D}`, { ok: [200, 404], what: "blob" });
  assert.equal(client.tokenRequests, 1);
  now += 291_000; // expires_in 300 s, renewed 10 s early
  await client.request("HEAD", `blobs/${D}`, { ok: [200, 404], what: "blob" });
  assert.equal(client.tokenRequests, 2);
});

test("Bearer registry: bad or missing credentials, unknown tags and tampered blobs are clear errors", async (t) => {
  const dir = await tempDir(t);
  const reg = await fakeRegistry(t);
  const { store, digest } = await buildTinyBase(join(dir, "src"));
  const isErr = (code: string, re: RegExp, hint?: RegExp) => (e: unknown) => {
    assert.ok(e instanceof KilnError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    assert.ok(e.hint, "has a hint");
    if (hint) assert.match(e.hint!, hint);
    return true;
  };

  await assert.rejects(pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/tiny`), { credentials: { username: "alice", password: "nope" } }), isErr("KILN_E_REGISTRY", /refused the credentials/, /check the username and password/));
  await assert.rejects(pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/tiny`)), isErr("KILN_E_REGISTRY", /refused anonymous access/, /--password-stdin/));
  await assert.rejects(pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/tiny@${digest}`)), isErr("KILN_E_USAGE", /not a digest/));

  await pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/tiny`), { credentials: alice });
  const fresh = openStore(join(dir, "fresh"));
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg.addr}/tiny:9.9.9`), { credentials: alice }), isErr("KILN_E_NOT_FOUND", /has no manifest 9\.9\.9/, /skopeo list-tags/));
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg.addr}/tiny`), { credentials: alice }), isErr("KILN_E_USAGE", /name a tag or a digest/));

  const manifest = JSON.parse((await store.readBlob(digest)).toString()) as { layers: { digest: string }[] };
  const layer = manifest.layers[0]!.digest;
  reg.tamper.add(layer);
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg.addr}/tiny:1`), { credentials: alice }), isErr("KILN_E_UNSAFE", /does not match its digest; it was not stored/));
  assert.equal(await fresh.hasBlob(layer), false, "the tampered blob is not in the store");
  assert.equal(await fresh.hasBlob(digest), false, "nor is the manifest");
  assert.deepEqual((await fresh.readIndex()).manifests, []);

  // A manifest served under a digest it does not hash to.
  const wrong = "sha256:" + "b".repeat(64);
  reg.manifests.set(`tiny:${wrong}`, reg.manifests.get("tiny:1")!);
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg.addr}/tiny@${wrong}`), { credentials: alice }), isErr("KILN_E_UNSAFE", /does not match its digest/));

  // Nothing listens on a port just closed.
  const closed = await new Promise<number>((r) => {
    const s = createNetServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => r(p));
    });
  });
  await assert.rejects(pullImage(fresh, parseRegistryRef(`127.0.0.1:${closed}/tiny:1`)), isErr("KILN_E_REGISTRY", /connection refused/, /running/));
});

test("Bearer registry: an index resolves to this platform's manifest, or says which platforms it has", async (t) => {
  const dir = await tempDir(t);
  const reg = await fakeRegistry(t);
  const { store, digest } = await buildTinyBase(join(dir, "src"));
  await pushImage(store, "tiny:1", parseRegistryRef(`${reg.addr}/multi`), { credentials: alice });
  const size = (await store.readBlob(digest)).length;
  const arch = ociArchitecture(process.arch);
  const index = (platform: string) =>
    canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.index, manifests: [{ mediaType: MEDIA_TYPE.manifest, digest, size, platform: { os: "linux", architecture: platform } }] });
  reg.manifests.set("multi:idx", { type: MEDIA_TYPE.index, body: index(arch) });
  reg.manifests.set("multi:other", { type: MEDIA_TYPE.index, body: index("s390x-never") });

  const fresh = openStore(join(dir, "fresh"));
  const r = await pullImage(fresh, parseRegistryRef(`${reg.addr}/multi:idx`), { credentials: alice });
  assert.equal(r.digest, digest);
  assert.equal(r.indexDigest, sha(index(arch)));
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg.addr}/multi:other`), { credentials: alice }), (e: unknown) => e instanceof KilnError && /without a linux\/.* image \(it has linux\/s390x-never\)/.test(e.message));
});
