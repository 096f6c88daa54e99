// `kiln generate systemd`'s emitter, a pure function of kiln.yaml and the host: the units'
// settings read back with a small parser of systemd's format, the quoting table, and what is
// left out on purpose so bubblewrap keeps working under the controller's hardening.

import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { execWord, generateHost, type GeneratedFile, type HostInfo } from "../../src/generate/index.js";
import { helloSpec } from "./helpers.js";

const HOST: HostInfo = {
  unitPrefix: "kiln-hello",
  workingDirectory: "/srv/hello",
  proxy: { argv: ["/usr/bin/node", "/opt/kiln/dist/src/traffic/proxy/main.js", "--listen", "127.0.0.1:8080"], log: "/srv/hello/.kiln/logs/proxy.log" },
  controller: { argv: ["/usr/bin/node", "/opt/kiln/dist/src/server/main.js", "--spec", "/srv/hello/kiln.yaml", "--home", "/srv/hello/.kiln"], log: "/srv/hello/.kiln/logs/controller.log" },
  writablePaths: ["/srv/hello/.kiln"],
  environment: [{ name: "PATH", value: "/usr/bin:/bin" }, { name: "DOCKER_HOST", value: "unix:///run/docker.sock" }],
  secretNames: ["WEBHOOK_KEY"],
  environmentFile: "/etc/kiln/kiln-hello.env",
  wants: ["docker.service"],
};

/** systemd's unit format, enough to check: sections of (key, value) in order; comments and blanks skipped. */
function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s) {
      current = [];
      sections.set(s[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    assert.ok(kv && current, `line ${i + 1} is neither a section, a comment nor Key=value: ${raw}`);
    current.push([kv[1]!, kv[2]!]);
  }
  return sections;
}

const keys = (u: Map<string, [string, string][]>, section: string) => new Map(u.get(section)!.map(([k, v]) => [k, v]));
const unit = (files: GeneratedFile[], path: string) => parseUnit(files.find((f) => f.path === path)!.content);

test("execWord: systemd's quoting, with % and $ passed through", () => {
  const rows: [string, string][] = [
    ["/usr/bin/node", "/usr/bin/node"],
    ["127.0.0.1:8080", "127.0.0.1:8080"],
    ["a b", '"a b"'],
    ["50%", '"50%%"'],
    ["$HOME", '"$$HOME"'],
    ['say "hi"', '"say \\"hi\\""'],
  ];
  for (const [a, want] of rows) assert.equal(execWord(a), want, a);
});

test("router builtin: a proxy unit and a controller unit that wants it, each restarted on failure with a backoff", () => {
  const files = generateHost("systemd", helloSpec(), HOST);
  assert.deepEqual(files.map((f) => f.path), ["kiln-hello-controller.service", "kiln-hello-proxy.service"]);
  const proxy = unit(files, "kiln-hello-proxy.service");
  const controller = unit(files, "kiln-hello-controller.service");
  assert.deepEqual([...proxy.keys()], ["Unit", "Service", "Install"]);
  assert.deepEqual([...controller.keys()], ["Unit", "Service", "Install"]);
  for (const u of [proxy, controller]) {
    const s = keys(u, "Service");
    assert.equal(s.get("Restart"), "on-failure");
    assert.equal(s.get("RestartSec"), "1s");
    assert.equal(s.get("RestartSteps"), "5");
    assert.equal(s.get("RestartMaxDelaySec"), "30s");
    assert.equal(s.get("WorkingDirectory"), "/srv/hello");
    assert.equal(s.get("StandardError"), "inherit");
    assert.ok(s.get("ExecStart")!.startsWith("/usr/bin/node /opt/kiln/dist/src/"), "absolute node and script");
    assert.equal(keys(u, "Unit").get("StartLimitBurst"), "20");
    assert.equal(keys(u, "Install").get("WantedBy"), "multi-user.target");
    assert.deepEqual(u.get("Service")!.filter(([k]) => k === "Environment").map(([, v]) => v), ['"PATH=/usr/bin:/bin"', '"DOCKER_HOST=unix:///run/docker.sock"']);
  }
  assert.equal(keys(proxy, "Service").get("ExecStart"), "/usr/bin/node /opt/kiln/dist/src/traffic/proxy/main.js --listen 127.0.0.1:8080");
  assert.equal(keys(proxy, "Service").get("StandardOutput"), "append:/srv/hello/.kiln/logs/proxy.log");
  const c = keys(controller, "Service");
  assert.equal(c.get("ExecStart"), "/usr/bin/node /opt/kiln/dist/src/server/main.js --spec /srv/hello/kiln.yaml --home /srv/hello/.kiln");
  assert.equal(c.get("KillMode"), "process", "a controller restart leaves the instances serving");
  assert.equal(c.get("EnvironmentFile"), "-/etc/kiln/kiln-hello.env");
  assert.match(files.find((f) => f.path === "kiln-hello-controller.service")!.content, /WEBHOOK_KEY go in this file/);
  assert.equal(keys(controller, "Unit").get("After"), "network.target kiln-hello-proxy.service docker.service");
  assert.equal(keys(controller, "Unit").get("Wants"), "kiln-hello-proxy.service docker.service");
  assert.equal(keys(proxy, "Unit").get("Wants"), undefined, "the proxy does not depend on the controller");
});

test("hardening: the proxy gets the strict set; the controller none of the options that break bubblewrap", () => {
  const files = generateHost("systemd", helloSpec(), HOST);
  const p = keys(unit(files, "kiln-hello-proxy.service"), "Service");
  const c = keys(unit(files, "kiln-hello-controller.service"), "Service");
  for (const s of [p, c]) {
    assert.equal(s.get("ProtectSystem"), "strict");
    assert.equal(s.get("ProtectHome"), "read-only");
    assert.equal(s.get("ReadWritePaths"), "-/srv/hello/.kiln");
    assert.equal(s.get("PrivateTmp"), "yes");
    assert.equal(s.get("NoNewPrivileges"), "yes");
  }
  for (const k of ["RestrictNamespaces", "ProtectHostname", "ProtectKernelTunables", "SystemCallFilter", "PrivateDevices", "CapabilityBoundingSet", "ProtectKernelLogs"]) assert.ok(p.has(k), `proxy has ${k}`);
  for (const k of ["RestrictNamespaces", "PrivateUsers", "ProtectHostname", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset", "SystemCallFilter", "CapabilityBoundingSet", "PrivateDevices", "MemoryDenyWriteExecute"]) {
    assert.equal(c.has(k), false, `the controller must not set ${k}: bwrap (or Node's JIT) needs what it takes`);
  }
  assert.equal(p.has("MemoryDenyWriteExecute"), false, "Node's JIT writes code");
});

test("router haproxy: only the controller unit (it starts HAProxy); it goes to stdout as one file", () => {
  const { proxy: _, ...noProxy } = HOST;
  const files = generateHost("systemd", helloSpec([[["router"], "haproxy"]]), { ...noProxy, wants: [] });
  assert.deepEqual(files.map((f) => f.path), ["kiln-hello-controller.service"]);
  const u = unit(files, "kiln-hello-controller.service");
  assert.equal(keys(u, "Unit").get("After"), "network.target");
  assert.equal(keys(u, "Unit").has("Wants"), false);
});

test("a workspace under /tmp gets no PrivateTmp (it would hide it); a non-root user gets User=", () => {
  const files = generateHost("systemd", helloSpec(), { ...HOST, workingDirectory: "/tmp/w", writablePaths: ["/tmp/w/.kiln"], user: "deploy" });
  for (const f of files) {
    const s = keys(parseUnit(f.content), "Service");
    assert.equal(s.has("PrivateTmp"), false, f.path);
    assert.equal(s.get("ReadWritePaths"), "-/tmp/w/.kiln -/tmp -/var/tmp", `${f.path}: temporary files still writable`);
    assert.equal(s.get("User"), "deploy", f.path);
  }
});

test("deterministic: the same input gives byte-identical units", () => {
  assert.deepEqual(generateHost("systemd", helloSpec(), HOST), generateHost("systemd", helloSpec(), { ...HOST }));
});

test("refused with a clear error: a path with a space, and a shared edge", () => {
  assert.throws(() => generateHost("systemd", helloSpec(), { ...HOST, workingDirectory: "/srv/my app" }), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && /whitespace/.test(e.message) && /without spaces/.test(e.hint ?? ""));
  assert.throws(() => generateHost("systemd", helloSpec([[["edge", "hosts"], ["a.example"]]]), HOST), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && /shared edge/.test(e.message));
});
