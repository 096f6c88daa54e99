// kiln.yaml `resources` end to end (issue 12): through the real CLI, `kiln up` and `kiln deploy`
// launch the example with limits; `kiln status` (text and --json) names them and how they are
// enforced; the instance is in its cgroup and (as root) runs as a uid of kiln's range.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { chooseEnforcement, readCgroupHost } from "../../src/providers/local/limits.js";
import { DEFAULT_UID_RANGE } from "../../src/providers/local/uid-range.js";
import { hasBwrap, helloWorkspace, kiln, kilnDown, kilnStatus, requireTool } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
const claims = mkdtempSync(join(tmpdir(), "kiln-it-uid-claims-"));
const env = { KILN_UID_CLAIMS_DIR: claims };

after(async () => {
  if (ws) {
    await kilnDown([], { cwd: ws.dir, env });
    rmSync(ws.dir, { recursive: true, force: true });
  }
  rmSync(claims, { recursive: true, force: true });
});

test("deploy with resources: status says the limits and their enforcement; the instance is inside them", { timeout: 300_000 }, async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  ws = await helloWorkspace("kiln-it-res-");
  const file = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(file, "utf8"));
  doc.set("instances", 1);
  doc.set("resources", doc.createNode({ memory: "192Mi", pids: 96, cpu: 1 }));
  writeFileSync(file, doc.toString());

  for (const args of [["bake"], ["up", "--detach"], ["deploy"]]) {
    const r = await kiln(args, { cwd: ws.dir, env });
    assert.equal(r.code, 0, `kiln ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  }
  const isRoot = process.geteuid?.() === 0;
  const enforcement = chooseEnforcement(readCgroupHost(), isRoot);
  const s = await kilnStatus(ws.dir);
  assert.deepEqual(s.limits, { enforcement, resources: "memory 192Mi, pids 96, cpu 1" });
  const text = await kiln(["status"], { cwd: ws.dir, env });
  assert.match(text.stdout, new RegExp(`^limits +memory 192Mi, pids 96, cpu 1, enforced by ${enforcement}$`, "m"));

  const pid = s.instances[0]?.pid;
  assert.ok(pid, JSON.stringify(s.instances));
  if (enforcement === "cgroup-v1") {
    const cg = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    for (const c of ["memory", "pids", "cpu"]) assert.match(cg, new RegExp(`^\\d+:${c}:.*/kiln/[0-9a-f]{12}/${s.instances[0]!.id}$`, "m"), `${c} cgroup of ${pid}:\n${cg}`);
  }
  if (isRoot) {
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
    t.diagnostic(`instance ${s.instances[0]!.id} runs as host uid ${uid}`);
    assert.ok(uid >= DEFAULT_UID_RANGE.start && uid < DEFAULT_UID_RANGE.start + DEFAULT_UID_RANGE.count, `uid ${uid} is in kiln's range`);
  }
});
