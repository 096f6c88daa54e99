// `kiln generate systemd` through the real CLI: the units name this machine's node and kiln by
// absolute path and run exactly what `kiln up` runs, the output is deterministic, and systemd's
// own `systemd-analyze verify` accepts them (the only complaints allowed are systemd < 254 not
// knowing RestartSteps/RestartMaxDelaySec). They are not started: this host has no systemd as PID 1.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseDocument } from "yaml";
import { PROXY_NODE_FLAGS } from "../../../src/traffic/proxy/node-flags.js";
import { helloCopy, need, run, tempDir } from "../helpers.js";
import { KILN_BIN as kilnBin } from "../../support/kiln-bin.js";

const kiln = (args: string[], cwd: string, env: Record<string, string> = {}) => run([process.execPath, kilnBin, ...args], { cwd, env: { NO_COLOR: "1", KILN_HOME: "", ...env } });
const execStart = (unit: string) => /^ExecStart=(.*)$/m.exec(unit)![1]!.split(" ");

test("kiln generate systemd -o DIR: two units with absolute paths, the same bytes twice, accepted by systemd-analyze verify", (t) => {
  const app = helloCopy(t);
  const out = tempDir(t, "kiln-gen-units-");
  const r = kiln(["generate", "systemd", "-o", out], app, { DOCKER_HOST: "" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ["kiln-hello-controller.service", "kiln-hello-proxy.service"]);
  const proxy = readFileSync(join(out, "kiln-hello-proxy.service"), "utf8");
  const controller = readFileSync(join(out, "kiln-hello-controller.service"), "utf8");
  // ExecStart: this node (the proxy with its V8 flags, as `kiln up` starts it), kiln's own daemon
  // scripts, and kiln.yaml's listen address.
  const proxyArgv = execStart(proxy);
  assert.deepEqual(proxyArgv.slice(1, 1 + PROXY_NODE_FLAGS.length), [...PROXY_NODE_FLAGS]);
  for (const unit of [proxy, controller]) {
    const argv = execStart(unit);
    assert.equal(argv[0], process.execPath);
    const s = argv.slice(1).find((a) => !a.startsWith("--"))!;
    assert.ok(s.startsWith("/") && existsSync(s), `${s} exists`);
    assert.match(unit, new RegExp(`^WorkingDirectory=${app}$`, "m"));
  }
  const listen = parseDocument(readFileSync(join(app, "kiln.yaml"), "utf8")).get("listen") as string;
  assert.deepEqual(proxyArgv.slice(2 + PROXY_NODE_FLAGS.length, 4 + PROXY_NODE_FLAGS.length), ["--listen", listen]);
  assert.deepEqual(execStart(controller).slice(2, 10), ["--spec", join(app, "kiln.yaml"), "--home", join(app, ".kiln"), "--provider", "local", "--router", "builtin"]);

  const again = tempDir(t, "kiln-gen-units-");
  assert.equal(kiln(["generate", "systemd", "-o", again], app, { DOCKER_HOST: "" }).status, 0);
  for (const f of readdirSync(out)) assert.equal(readFileSync(join(again, f), "utf8"), readFileSync(join(out, f), "utf8"), `${f} is deterministic`);

  if (!need(t, "systemd-analyze", "systemd")) return;
  const v = run(["systemd-analyze", "verify", join(out, "kiln-hello-proxy.service"), join(out, "kiln-hello-controller.service")]);
  assert.equal(v.status, 0, v.stderr);
  const complaints = (v.stdout + v.stderr).split("\n").filter((l) => l.trim() !== "" && !/Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\], ignoring\.$/.test(l));
  assert.deepEqual(complaints, [], "systemd-analyze verify has nothing else to say");
});

test("provider docker passes DOCKER_HOST on and orders the controller after docker.service; router haproxy writes one unit to stdout", (t) => {
  const app = helloCopy(t);
  const file = join(app, "kiln.yaml");
  const doc = parseDocument(readFileSync(file, "utf8"));
  doc.set("provider", "docker");
  doc.set("router", "haproxy");
  writeFileSync(file, doc.toString());
  const r = kiln(["generate", "systemd"], app, { DOCKER_HOST: "unix:///run/kiln-docker/docker.sock" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^# kiln-hello-controller\.service: /);
  assert.match(r.stdout, /^Environment="DOCKER_HOST=unix:\/\/\/run\/kiln-docker\/docker\.sock"$/m);
  assert.match(r.stdout, /^After=network\.target docker\.service$/m);
  assert.match(r.stdout, /--provider docker --router haproxy$/m);
});

test("stdout with two units is refused with the -o hint; --help has the example; --image does not apply", (t) => {
  const app = helloCopy(t);
  const r = kiln(["generate", "systemd"], app);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /`kiln generate systemd` writes 2 files \(kiln-hello-controller\.service, kiln-hello-proxy\.service\)\n\s+hint: pass -o DIR, e\.g\. kiln generate systemd -o \/etc\/systemd\/system/);
  const h = kiln(["generate", "--help"], app);
  assert.match(h.stdout, /systemd\s+systemd units for this host/);
  assert.match(h.stdout, /kiln generate systemd -o \/etc\/systemd\/system\n\s+systemctl daemon-reload && systemctl enable --now kiln-hello-proxy kiln-hello-controller/);
  const i = kiln(["generate", "systemd", "--image", "x@sha256:" + "1".repeat(64)], app);
  assert.equal(i.status, 2);
  assert.match(i.stderr, /--image does not apply/);
});
