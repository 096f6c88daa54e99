// netns.ts and network-allow.ts: the pure pieces (issue 12), rows from their doc comments.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAllowEntry } from "../../src/config/network-allow.js";
import { parseSpec } from "../../src/config/index.js";
import { describeNetwork, egressPorts, hasLoopbackAddress, isForwarderOf, isListening, isPastListeners, pastaArgs, planNetwork, readTcpListeners } from "../../src/providers/local/netns.js";
import { bwrapArgs, type SandboxInput } from "../../src/providers/local/sandbox-command.js";

test("parseAllowEntry: only host loopback ports", () => {
  assert.deepEqual(parseAllowEntry("127.0.0.1:5432"), { ok: true, port: 5432 });
  assert.deepEqual(parseAllowEntry(" 127.0.0.1:6379 "), { ok: true, port: 6379 });
  const refused: [string, RegExp][] = [
    ["localhost:5432", /name the loopback as 127\.0\.0\.1/],
    ["[::1]:5432", /name the loopback as 127\.0\.0\.1/],
    ["10.0.0.7:5432", /only the host's loopback/],
    ["db.internal:5432", /only the host's loopback/],
    ["127.0.0.1:0", /out of range/],
    ["127.0.0.1:70000", /out of range/],
    ["127.0.0.1", /not HOST:PORT/],
  ];
  for (const [entry, why] of refused) {
    const r = parseAllowEntry(entry);
    assert.equal(r.ok, false, entry);
    if (!r.ok) {
      assert.match(r.reason, why, entry);
      assert.ok(r.hint.length > 0);
    }
  }
});

test("kiln.yaml network.allow: a refused entry is a problem at its path; a good one loads", () => {
  const bad = parseSpec('name: s\nversion: v1\nnetwork:\n  allow: ["127.0.0.1:5432", "db:5432"]\n', "kiln.yaml");
  assert.ok("errors" in bad);
  if ("errors" in bad) {
    const p = bad.errors.find((e) => e.path === "network.allow[1]");
    assert.ok(p, JSON.stringify(bad.errors));
    assert.match(p.message, /only the host's loopback/);
    assert.match(p.where, /kiln\.yaml:4:/);
  }
  const good = parseSpec('name: s\nversion: v1\nnetwork:\n  allow: ["127.0.0.1:5432", "127.0.0.1:5432"]\n', "kiln.yaml");
  assert.ok("spec" in good);
  if ("spec" in good) assert.deepEqual(good.spec.network, { mode: "private", allow: ["127.0.0.1:5432"] });
  const mode = parseSpec("name: s\nversion: v1\nnetwork: { mode: bridge }\n", "kiln.yaml");
  assert.ok("errors" in mode);
});

test("egressPorts: sorted, unique", () => {
  assert.deepEqual(egressPorts(["127.0.0.1:6379", "127.0.0.1:5432", "127.0.0.1:6379"]), [5432, 6379]);
  assert.deepEqual(egressPorts([]), []);
});

test("planNetwork: the doc comment's rows", () => {
  assert.deepEqual(planNetwork(undefined, "bwrap", "/usr/bin/pasta"), { mode: "private", egress: [] });
  assert.deepEqual(planNetwork({ mode: "private", allow: ["127.0.0.1:5432"] }, "bwrap", "/usr/bin/pasta"), { mode: "private", egress: [5432] });
  assert.deepEqual(planNetwork({ mode: "host", allow: [] }, "bwrap", "/usr/bin/pasta"), { mode: "host", reason: "network.mode: host", warn: false });
  const noPasta = planNetwork(undefined, "bwrap", undefined);
  assert.equal(noPasta.mode, "host");
  assert.ok(noPasta.mode === "host" && noPasta.warn && /passt/.test(noPasta.reason));
  const chroot = planNetwork(undefined, "chroot", "/usr/bin/pasta");
  assert.ok(chroot.mode === "host" && chroot.warn);
});

test("pastaArgs: inbound on the host's loopback, outbound only the declared ports, no UDP, no gateway", () => {
  assert.deepEqual(pastaArgs({ netnsPath: "/proc/self/fd/3", port: 21000, egress: [5432, 6379], runAs: "0:0", logFile: "/h/net.log" }), [
    "--foreground", "--quiet", "--log-file", "/h/net.log", "--log-size", "1048576", "--netns", "/proc/self/fd/3", "--runas", "0:0",
    "-t", "127.0.0.1/21000", "-T", "5432,6379", "-u", "none", "-U", "none",
    "--no-icmp", "--no-dhcp", "--no-dhcpv6", "--no-ndp", "--no-ra", "--no-map-gw",
  ]);
  // no egress: -T none (pasta's default, auto, would mirror every host listener into the namespace)
  const none = pastaArgs({ netnsPath: "/n", usernsPath: "/u", port: 1, egress: [], logFile: "/l" });
  assert.equal(none[none.indexOf("-T") + 1], "none");
  assert.deepEqual(none.slice(6, 10), ["--netns", "/n", "--userns", "/u"]);
  // nothing goes out: IPv4 alone (the inbound port is 127.0.0.1's); with egress, IPv6 stays for ::1 inside
  assert.ok(none.includes("--ipv4-only"));
  assert.ok(!pastaArgs({ netnsPath: "/n", port: 1, egress: [5432], logFile: "/l" }).includes("--ipv4-only"));
});

test("isPastListeners: the doc comment's rows", () => {
  const head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  const listener = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n";
  const timeWait = "   1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00000A8C 00000000     0        0 0\n";
  assert.equal(isPastListeners(head), false);
  assert.equal(isPastListeners(head + listener), false);
  assert.equal(isPastListeners(head + listener + timeWait), true);
  // a line cut by the read is not judged
  assert.equal(isPastListeners(head + listener + timeWait.slice(0, 40)), false);
});

test("readTcpListeners: stops past the listeners of a large table, missing none", () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-tcp-"));
  try {
    const head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const row = (n: number, port: number, st: string) => `${String(n).padStart(4)}: 0100007F:${port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${n}\n`;
    let text = head;
    for (let n = 0; n < 40; n++) text += row(n, 20000 + n, "0A");
    for (let n = 40; n < 3000; n++) text += row(n, 40000 + (n % 20000), "06");
    writeFileSync(join(dir, "tcp"), text);
    const part = readTcpListeners(join(dir, "tcp"));
    for (let n = 0; n < 40; n++) assert.equal(isListening(part, 20000 + n), true, `port ${20000 + n}`);
    assert.ok(part.length < text.length / 4, `read ${part.length} of ${text.length} bytes`);
    assert.equal(readTcpListeners(join(dir, "absent")), "");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("readTcpListeners: this host's table shows a listener of ours", async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    assert.equal(isListening(readTcpListeners(), (server.address() as AddressInfo).port), true);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test("isListening: the doc comment's rows", () => {
  const head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  assert.equal(isListening(head + "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n", 8080), true);
  assert.equal(isListening(head + "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n", 8080), true);
  assert.equal(isListening(head + "   0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1\n", 8080), false);
  assert.equal(isListening(head + "   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n", 8080), false);
});

test("bwrapArgs: --unshare-net only for a private network", () => {
  const input: SandboxInput = { instanceId: "w", mounts: [], rootfs: "/r", volumeDirs: {}, uid: 1000, gid: 1000, workdir: "/", env: [], argv: ["/a"], tmpSizeBytes: 1, stageDir: "/s", hostPath: "/bin" };
  assert.ok(!bwrapArgs(input, () => "").includes("--unshare-net"));
  assert.deepEqual(bwrapArgs({ ...input, unshareNet: true }, () => "").slice(0, 4), ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]);
});

test("describeNetwork: the doc comment's rows", () => {
  assert.equal(describeNetwork({ schema: 1, mode: "private", pid: 1, startTime: 1, egress: [5432] }), "private (own namespace), egress: 127.0.0.1:5432");
  assert.equal(describeNetwork({ schema: 1, mode: "private", pid: 1, startTime: 1, egress: [] }), "private (own namespace), egress: none");
  assert.equal(describeNetwork({ schema: 1, mode: "host", reason: "network.mode: host", egress: [] }), "host (network.mode: host)");
  assert.equal(describeNetwork(undefined), undefined);
});

test("isForwarderOf: the doc comment's rows (a forwarder whose record was lost is still found by its argv)", () => {
  const rows: [string, string, boolean][] = [
    ["/usr/bin/pasta\0--foreground\0--log-file\0/h/instances/a/net.log\0-t\x00127.0.0.1/9000\0", "/h/instances/a", true],
    ["/usr/bin/pasta\0--log-file\0/h/instances/ab/net.log\0", "/h/instances/a", false],
    ["/bin/sh\0-c\0echo --log-file\0/h/instances/a/net.log\0", "/h/instances/a", false],
    ["pasta.avx2\0--log-file\0/h/instances/a/net.log\0", "/h/instances/a", true],
  ];
  for (const [argv, dir, want] of rows) assert.equal(isForwarderOf(argv, dir), want, JSON.stringify(argv));
});

test("hasLoopbackAddress: the doc comment's rows, and a real namespace's trie", () => {
  assert.equal(hasLoopbackAddress(""), false);
  assert.equal(hasLoopbackAddress("Local:\n  |-- 127.0.0.1\n     /32 host LOCAL\n"), true);
  assert.equal(hasLoopbackAddress("Local:\n  |-- 127.0.0.2\n     /32 host LOCAL\n"), false);
  // as Linux prints it for a namespace whose lo bwrap configured
  const configured = "Main:\n  +-- 127.0.0.0/8 2 0 2\n     +-- 127.0.0.0/31 1 0 0\n        |-- 127.0.0.0\n           /8 host LOCAL\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 127.255.255.255\n        /32 link BROADCAST\nLocal:\n  +-- 127.0.0.0/8 2 0 2\n";
  assert.equal(hasLoopbackAddress(configured), true);
});
