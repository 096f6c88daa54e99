// Issue 12's secret-scan: a deploy with secrets from the deployer's environment, a file and a
// command, each a random marker. The instances get the values (they answer with a hash of them),
// and no file under KILN_HOME (state database, WAL, logs, meta, routes, instance logs, the image
// store) nor any output of deploy/status/history/events/logs --json holds a marker. Then the
// controller is killed and restarted (values no longer in memory) and an instance killed: the
// heal reads the sources again and the new instance has the same values.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { pidAlive } from "../../../src/home.js";
import { hasBwrap, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, type RunResult, until } from "../../integration/support.js";

const marker = () => `kilnsecret${randomBytes(12).toString("hex")}`;
const sha = (v: string) => createHash("sha256").update(v).digest("hex");

// The app prints nothing of its environment: it answers with hashes of its secrets.
const SERVER = `const http = require("node:http");
const crypto = require("node:crypto");
const h = (v) => crypto.createHash("sha256").update(v ?? "<unset>").digest("hex");
http.createServer((req, res) => {
  if (req.url === "/digests") return res.end(JSON.stringify({ env: h(process.env.APP_TOKEN), file: h(process.env.FILE_TOKEN), cmd: h(process.env.CMD_TOKEN), instance: process.env.KILN_INSTANCE_ID }));
  res.end("ok");
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

/** Every regular file under dir (symlinks not followed), bounded in count. */
function filesUnder(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) filesUnder(p, out);
    else if (st.isFile()) out.push(p);
    if (out.length > 200_000) throw new Error("too many files to scan");
  }
  return out;
}

let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
after(async () => {
  if (!ws) return;
  await kilnDown([], { cwd: ws.dir });
  rmSync(ws.dir, { recursive: true, force: true });
});

test("secrets reach the instances and nothing under KILN_HOME or in any output", { timeout: 300_000 }, async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  ws = await helloWorkspace("kiln-secrets-");
  const dir = ws.dir;
  const m = { env: marker(), file: marker(), cmd: marker() };
  writeFileSync(join(dir, "server.js"), SERVER);
  writeFileSync(join(dir, "token.txt"), m.file + "\n");
  writeFileSync(join(dir, "cmd-token.txt"), m.cmd);
  const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
  doc.set("instances", 2);
  doc.set("secrets", { APP_TOKEN: { fromEnv: "KILN_TEST_TOKEN" }, FILE_TOKEN: { fromFile: "token.txt" }, CMD_TOKEN: { fromCommand: ["/bin/cat", "cmd-token.txt"], timeout: "5s" } });
  writeFileSync(join(dir, "kiln.yaml"), doc.toString());

  const outputs: [string, RunResult][] = [];
  const run = async (args: string[], env?: Record<string, string>) => {
    const r = await kiln(args, { cwd: dir, ...(env ? { env } : {}) });
    outputs.push([args.join(" "), r]);
    return r;
  };
  const b = await run(["bake"]);
  assert.equal(b.code, 0, b.stderr);
  // Without the variable the deploy is refused before anything changes, naming the secret, not a value.
  const refused = await run(["deploy", "--json"]);
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /secret APP_TOKEN: environment variable KILN_TEST_TOKEN is not set/);
  // `kiln up` gets the variable: its supervisor restarts the controller with this environment.
  const up = await run(["up", "--detach"], { KILN_TEST_TOKEN: m.env });
  assert.equal(up.code, 0, up.stderr);
  const d = await run(["deploy", "--json"], { KILN_TEST_TOKEN: m.env });
  assert.equal(d.code, 0, d.stdout + d.stderr);

  const want = { env: sha(m.env), file: sha(m.file), cmd: sha(m.cmd) };
  const digestsOf = async () => (await (await fetch(`http://127.0.0.1:${ws!.port}/digests`)).json()) as Record<string, string>;
  const seen = new Set<string>();
  for (let i = 0; i < 20 && seen.size < 2; i++) {
    const got = await digestsOf();
    assert.deepEqual({ env: got.env, file: got.file, cmd: got.cmd }, want, "an instance has the secrets' values");
    seen.add(got.instance!);
  }

  const s1 = await kilnStatus(dir);
  for (const args of [["status", "--json"], ["history", "--json"], ["events", "--json", "-n", "500"], ["logs", "-n", "500"]]) await run(args);

  // Restart the controller without the values in memory, then lose an instance: the heal reads
  // the sources again (the variable from `kiln up`'s environment) and checks them against the digest.
  process.kill(s1.controller.pid, "SIGKILL");
  await until(() => !pidAlive(s1.controller.pid), 5000, "controller death");
  const up2 = await run(["up", "--detach"], { KILN_TEST_TOKEN: m.env });
  assert.equal(up2.code, 0, up2.stderr);
  const victim = inRotation(s1)[0]!;
  process.kill(-victim.pid!, "SIGKILL");
  await until(async () => {
    const s = await kilnStatus(dir);
    return inRotation(s).length === 2 && !s.instances.some((i) => i.id === victim.id && i.inRotation);
  }, 90_000, "the fleet to heal");
  const healed = (await kilnStatus(dir)).instances.find((i) => i.inRotation && i.id !== inRotation(s1)[1]!.id)!;
  for (let i = 0; i < 30; i++) {
    const got = await digestsOf();
    assert.deepEqual({ env: got.env, file: got.file, cmd: got.cmd }, want, "the healed instance has the same values");
    if (got.instance === healed.id) break;
  }
  for (const args of [["status", "--json"], ["history", "--json"], ["events", "--json", "-n", "500"]]) await run(args);

  // The scan: every output, then every regular file under KILN_HOME.
  const markers = Object.values(m);
  for (const [what, r] of outputs) for (const mk of markers) assert.ok(!(r.stdout + r.stderr).includes(mk), `a secret value is in the output of kiln ${what}`);
  const home = join(dir, ".kiln");
  const files = filesUnder(home);
  assert.ok(files.some((f) => f.endsWith("state.db")), "the state database was scanned");
  assert.ok(files.some((f) => f.endsWith("state.db-wal")), "its WAL was scanned");
  assert.ok(files.some((f) => /instances\/.+\/meta\.json$/.test(f)), "instance meta was scanned");
  const needles = markers.map((mk) => Buffer.from(mk));
  let bytes = 0;
  for (const f of files) {
    const buf = readFileSync(f);
    bytes += buf.length;
    for (const n of needles) assert.equal(buf.indexOf(n), -1, `a secret value is in ${f}`);
  }
  t.diagnostic(`scanned ${files.length} files (${(bytes / 1e6).toFixed(1)} MB) under KILN_HOME and ${outputs.length} command outputs`);
});
