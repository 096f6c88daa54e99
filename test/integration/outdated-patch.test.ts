// Patching is a rebuild (issue 15, item 5), end to end through the real CLI: a fleet runs an
// image whose base (an OCI layout: Node.js 24 plus a Debian dpkg status) holds libssl3 at X; a
// Packages index offers X+1; `kiln outdated` lists it with the release that carries it; the base
// layout's tag is refreshed (as `skopeo copy` would) to an image with X+1; `kiln rebake --patch`
// bakes 1.0.1 with it, recorded as a patch of 1.0.0; `kiln deploy` rolls it out under load with
// 0 failed requests; `kiln outdated` is then clean and `kiln images --tree` shows the lineage.

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { createHash } from "node:crypto";
import { parseDocument } from "yaml";
import { canonicalBytes } from "../../src/image/digest.js";
import { openStore, resolveBase, type OciImageConfig, type OciManifest } from "../../src/image/index.js";
import { planLayer, writeLayer, type LayerEntry } from "../../src/image/layer.js";
import { MEDIA_TYPE } from "../../src/image/types.js";
import type { LoadHandle } from "../../src/loadgen/client.js";
import { hasBwrap, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, startFleetLoad } from "./support.js";

const OLD = "3.0.11-1~deb12u2";
const NEW = "3.0.17-1~deb12u3";

let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
let load: LoadHandle | undefined;

after(async () => {
  if (load) await load.stop();
  if (ws) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
});


function file(path: string, text: string): LayerEntry {
  const data = Buffer.from(text);
  return { path, kind: "file", mode: 0o644, file: { size: data.length, sha256: createHash("sha256").update(data).digest("hex"), data } };
}

const dpkgStatus = (libssl: string) =>
  `Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: ${libssl}\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2025b-0+deb12u1\n`;

/**
 * The layout `dir` tagged "node-deb:1": kiln's node@24 base (its layers copied from the home's
 * store) plus a layer with /etc/os-release and a dpkg status holding libssl3 at `libssl`. The
 * tag is (re)written in index.json directly, as `skopeo copy … oci:DIR:TAG` moves it.
 */
async function writeBase(home: string, dir: string, contextDir: string, libssl: string): Promise<string> {
  const homeStore = openStore(home);
  const node = await resolveBase("node@24", { store: homeStore, contextDir, onProgress: () => undefined });
  const layout = openStore(dir);
  const extra = await writeLayer(layout, planLayer([file("etc/os-release", 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'), file("var/lib/dpkg/status", dpkgStatus(libssl))]), 1_700_000_000);
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  for (const l of node.layers) copyFileSync(join(home, "blobs", "sha256", l.descriptor.digest.slice(7)), join(dir, "blobs", "sha256", l.descriptor.digest.slice(7)));
  const config: OciImageConfig = {
    ...node.config,
    rootfs: { type: "layers", diff_ids: [...node.config.rootfs.diff_ids, extra.diffId] },
    ...(node.config.history ? { history: [...node.config.history, { created: "2023-11-14T22:13:20Z", created_by: `dpkg status: libssl3 ${libssl}` }] } : {}),
  };
  const c = await layout.putBlob(canonicalBytes(config));
  const manifest: OciManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: [...node.layers.map((l) => l.descriptor), extra.descriptor] };
  const m = await layout.putBlob(canonicalBytes(manifest));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA_TYPE.manifest, ...m, annotations: { "org.opencontainers.image.ref.name": "node-deb:1" } }] }));
  return m.digest;
}

interface Report {
  outdated: boolean;
  findings: { kind: string; subject: string; installed: string; available?: string; rebake?: string; carriers: { service: string; release: string; live: boolean; instances: number }[] }[];
}

test("outdated → rebake --patch → deploy: the newer Debian package is listed, baked into 1.0.1 (a patch of 1.0.0) and rolled out with 0 failed requests", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  const started = Date.now();
  ws = await helloWorkspace("kiln-it-outdated-");
  const dir = ws.dir;
  const home = join(dir, ".kiln");
  const baseV1 = await writeBase(home, join(dir, "base"), dir, OLD);
  const spec = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
  spec.setIn(["image", "base"], "oci:base:node-deb:1");
  spec.set("version", "1.0.0");
  writeFileSync(join(dir, "kiln.yaml"), spec.toString());

  const b = await kiln(["bake", "--json"], { cwd: dir });
  assert.equal(b.code, 0, b.stderr);
  const parent = (JSON.parse(b.stdout) as { digest: string }).digest;
  const up = await kiln(["up", "--detach"], { cwd: dir });
  assert.equal(up.code, 0, up.stderr);
  const d1 = await kiln(["deploy"], { cwd: dir });
  assert.equal(d1.code, 0, d1.stdout + d1.stderr);

  const index = join(dir, "Packages");
  writeFileSync(index, `Package: libssl3\nVersion: ${OLD}\nArchitecture: amd64\n\nPackage: libssl3\nVersion: ${NEW}\nArchitecture: amd64\nFilename: pool/main/o/openssl/libssl3_${NEW}_amd64.deb\n\nPackage: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\n`);
  const o1 = await kiln(["outdated", "--packages-index", index, "--json"], { cwd: dir });
  assert.equal(o1.code, 1, `outdated exits 1 when something is: ${o1.stderr}`);
  const r1 = JSON.parse(o1.stdout) as Report;
  const deb = r1.findings.find((f) => f.kind === "debian");
  assert.deepEqual(
    { subject: deb?.subject, installed: deb?.installed, available: deb?.available, carriers: deb?.carriers.map((c) => [c.service, c.release, c.live, c.instances]) },
    { subject: "libssl3", installed: OLD, available: NEW, carriers: [["hello", "r1", true, 3]] },
  );
  const text = await kiln(["outdated", "--packages-index", index], { cwd: dir });
  assert.match(text.stdout, new RegExp(`debian +libssl3 ${OLD.replace(/[+~.]/g, "\\$&")} → ${NEW.replace(/[+~.]/g, "\\$&")}`));

  // Nothing refreshed yet: a rebake would change nothing, and says so (exit 2, kiln.yaml untouched).
  const same = await kiln(["rebake", "--patch"], { cwd: dir });
  assert.equal(same.code, 2, same.stdout + same.stderr);
  assert.match(same.stderr, /nothing to patch/);
  assert.match(readFileSync(join(dir, "kiln.yaml"), "utf8"), /^version: 1\.0\.0$/m);

  const baseV2 = await writeBase(home, join(dir, "base"), dir, NEW);
  assert.notEqual(baseV2, baseV1);
  const rebakeStarted = Date.now();
  const rb = await kiln(["rebake", "--patch", "--json"], { cwd: dir });
  assert.equal(rb.code, 0, rb.stdout + rb.stderr);
  const rebake = JSON.parse(rb.stdout) as { parent: { digest: string }; version: { from: string; to: string }; bake: { digest: string; ref: string }; changes: { kind: string; subject: string; from?: string; to?: string }[] };
  const rebakeMs = Date.now() - rebakeStarted;
  assert.deepEqual(rebake.version, { from: "1.0.0", to: "1.0.1" });
  assert.equal(rebake.parent.digest, parent);
  assert.deepEqual(rebake.changes.filter((c) => c.kind !== "base"), [{ kind: "debian", subject: "libssl3", from: OLD, to: NEW }]);
  assert.match(readFileSync(join(dir, "kiln.yaml"), "utf8"), /^version: 1\.0\.1$/m, "kiln.yaml names the patch");
  const sbom = await kiln(["sbom", "hello:1.0.1", "--json"], { cwd: dir });
  assert.ok((JSON.parse(sbom.stdout) as { components: { name: string; version?: string }[] }).components.some((c) => c.name === "libssl3" && c.version === NEW), "the patch holds the newer package");

  const fleet = await startFleetLoad(ws.port, 15_000);
  load = fleet.load;
  const deployStarted = Date.now();
  const d2 = await kiln(["deploy"], { cwd: dir });
  const deployMs = Date.now() - deployStarted;
  assert.equal(d2.code, 0, d2.stdout + d2.stderr);
  const w = await fleet.window();
  await load.stop();
  load = undefined;
  const s = await kilnStatus(dir);
  assert.equal(s.release?.version, "1.0.1");
  assert.ok(inRotation(s).length === 3 && s.instances.every((i) => i.version === "1.0.1"), JSON.stringify(s.instances));
  t.diagnostic(`rollout to the patch under load: ${w.requests} requests, ${w.failed} failed; rebake ${rebakeMs} ms, deploy ${deployMs} ms`);
  assert.ok(w.requests > 100, `load kept flowing (${w.requests})`);
  assert.equal(w.failed, 0);

  const o2 = await kiln(["outdated", "--packages-index", index, "--json"], { cwd: dir });
  assert.equal(o2.code, 0, `nothing outdated once the patch runs: ${o2.stdout}`);

  const tree = JSON.parse((await kiln(["images", "--tree", "--json"], { cwd: dir })).stdout) as { bases: { digest?: string; images: { ref: string; digest: string; patchOf?: { digest: string; ref?: string }; releases: { release: string; live: boolean }[] }[] }[] };
  const patch = tree.bases.flatMap((x) => x.images).find((i) => i.ref === "hello:1.0.1");
  assert.deepEqual(patch?.patchOf, { digest: parent, ref: "hello:1.0.0" });
  assert.deepEqual(patch?.releases.map((r) => [r.release, r.live]), [["r2", true]]);
  assert.equal(tree.bases.find((x) => x.images.some((i) => i.ref === "hello:1.0.1"))?.digest, baseV2);
  t.diagnostic(`whole flow ${Date.now() - started} ms`);
});
