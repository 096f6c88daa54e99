// The local provider's pure pieces: mount plan, image user, /proc parsing,
// bwrap status lines and the sandbox command lines (compared by equality).

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { resolveImageUser } from "../../src/providers/local/image-user.js";
import { parseBwrapStatus } from "../../src/providers/local/meta.js";
import { planMounts, type ImageTree, type TreeEntry } from "../../src/providers/local/mount-plan.js";
import { parseStat, readStat, trustedPidNamespace } from "../../src/providers/local/procfs.js";
import { BIND_STAGE_SCRIPT, bwrapArgs, chrootCommand, fstabField, renderStageOps, stagedBwrapCommand, stagingFstab, type SandboxInput } from "../../src/providers/local/sandbox-command.js";
import type { LaunchRequest } from "../../src/providers/provider.js";
import { FactCache, isLogOverCap } from "../../src/providers/local/local-provider.js";

// ------------------------------------------------------------------ pure parts

function literalTree(dirs: Record<string, TreeEntry[]>): ImageTree {
  return {
    list: (dir) => dirs[dir],
    kind: (path) => {
      if (dirs[path]) return "dir";
      const parent = path.slice(0, path.lastIndexOf("/")) || "/";
      const name = path.slice(path.lastIndexOf("/") + 1);
      return dirs[parent]?.find((e) => e.name === name)?.kind ?? "missing";
    },
  };
}

const image = literalTree({
  "/": [
    { name: "usr", kind: "dir" },
    { name: "etc", kind: "dir" },
    { name: "lib", kind: "symlink", linkTarget: "usr/lib" },
    { name: "var", kind: "dir" },
    { name: "proc", kind: "dir" },
    { name: "VERSION", kind: "file" },
    { name: "fifo", kind: "other" },
  ],
  "/var": [
    { name: "log", kind: "dir" },
    { name: "run", kind: "symlink", linkTarget: "/run" },
  ],
  "/usr": [],
  "/etc": [],
});

describe("planMounts", () => {
  test("binds each image entry read-only on a fresh root, then the sandbox's own mounts and the volumes", () => {
    const plan = planMounts(image, [{ name: "data", path: "/data" }]);
    assert.deepEqual(plan, {
      ok: true,
      mounts: [
        { kind: "image", target: "/VERSION", isDir: false },
        { kind: "image", target: "/etc", isDir: true },
        { kind: "symlink", target: "/lib", linkTarget: "usr/lib" },
        { kind: "image", target: "/usr", isDir: true },
        { kind: "image", target: "/var", isDir: true },
        { kind: "proc", target: "/proc" },
        { kind: "dev", target: "/dev" },
        { kind: "tmp", target: "/tmp" },
        { kind: "volume", target: "/data", name: "data" },
      ],
    });
  });

  test("synthesizes the directories on the way to a nested volume, missing ones included", () => {
    const plan = planMounts(image, [{ name: "cache", path: "/var/cache/app" }]);
    assert.ok(plan.ok);
    assert.deepEqual(
      plan.mounts.filter((m) => m.target.startsWith("/var")),
      [
        { kind: "dir", target: "/var" },
        { kind: "image", target: "/var/log", isDir: true },
        { kind: "symlink", target: "/var/run", linkTarget: "/run" },
        { kind: "dir", target: "/var/cache" },
        { kind: "volume", target: "/var/cache/app", name: "cache" },
      ],
    );
  });

  const bad: Array<[string, LaunchRequest["volumes"], RegExp]> = [
    ["relative path", [{ name: "a", path: "data" }], /not absolute/],
    ["unnormalized path", [{ name: "a", path: "/data/../etc" }], /not normalized/],
    ["trailing slash", [{ name: "a", path: "/data/" }], /not normalized/],
    ["root", [{ name: "a", path: "/" }], /cannot be mounted at "\/"/],
    ["inside /proc", [{ name: "a", path: "/proc/x" }], /inside \/proc/],
    ["/tmp itself", [{ name: "a", path: "/tmp" }], /inside \/tmp/],
    ["duplicate", [{ name: "a", path: "/d" }, { name: "b", path: "/d" }], /two volumes/],
    ["nested", [{ name: "a", path: "/d" }, { name: "b", path: "/d/e" }], /nested/],
    ["through a symlink", [{ name: "a", path: "/lib/x" }], /symlink in the image/],
    ["through a file", [{ name: "a", path: "/VERSION/x" }], /file in the image/],
  ];
  for (const [name, volumes, reason] of bad) {
    test(`refuses a volume: ${name}`, () => {
      const plan = planMounts(image, volumes);
      assert.equal(plan.ok, false);
      if (!plan.ok) {
        assert.match(plan.reason, reason);
        assert.ok(plan.hint.length > 0);
      }
    });
  }
});

describe("resolveImageUser", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n";
  const group = "root:x:0:\napp:x:1001:\nstaff:x:50:\n";
  const cases: Array<[string, { uid: number; gid: number } | RegExp]> = [
    ["1000:1000", { uid: 1000, gid: 1000 }],
    ["1000", { uid: 1000, gid: 1001 }],
    ["4242", { uid: 4242, gid: 4242 }],
    ["app", { uid: 1000, gid: 1001 }],
    ["app:staff", { uid: 1000, gid: 50 }],
    ["app:123", { uid: 1000, gid: 123 }],
    ["", /no user/],
    ["0:0", /is root/],
    ["root", /is root/],
    ["1000:0", /is root/],
    ["ghost", /not in the image's \/etc\/passwd/],
    ["app:ghosts", /not in the image's \/etc\/group/],
    ["a:b:c", /not USER\[:GROUP\]/],
  ];
  for (const [spec, want] of cases) {
    test(`"${spec}"`, () => {
      const got = resolveImageUser(spec, passwd, group);
      if (want instanceof RegExp) {
        assert.equal(got.ok, false);
        if (!got.ok) assert.match(got.reason, want);
      } else assert.deepEqual(got, { ok: true, ...want });
    });
  }
});

describe("procfs and status parsing", () => {
  test("parseStat survives spaces and parentheses in the command name", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = "S";
    fields[1] = "77"; // ppid
    fields[2] = "88"; // pgrp
    fields[19] = "123456"; // starttime (field 22)
    const s = parseStat(`4242 (my (odd) name) ${fields.join(" ")}\n`);
    assert.deepEqual(s, { pid: 4242, state: "S", ppid: 77, pgrp: 88, startTime: 123456 });
  });

  test("readStat reads this process", () => {
    const s = readStat(process.pid);
    assert.equal(s?.pid, process.pid);
    assert.ok((s?.startTime ?? 0) > 0);
  });

  test("parseBwrapStatus reads the start and exit documents", () => {
    const text =
      '{ "child-pid": 5559, "ipc-namespace": 1, "mnt-namespace": 2, "pid-namespace": 4026532182, "uts-namespace": 3 }\n{ "exit-code": 7 }\n';
    assert.deepEqual(parseBwrapStatus(text), { childPid: 5559, pidNamespace: 4026532182, exitCode: 7 });
    assert.deepEqual(parseBwrapStatus('{ "child-pid": 1'), {});
  });
});

describe("sandbox command lines", () => {
  const input: SandboxInput = {
    instanceId: "web-1",
    mounts: [
      { kind: "image", target: "/usr", isDir: true },
      { kind: "image", target: "/VERSION", isDir: false },
      { kind: "symlink", target: "/lib", linkTarget: "usr/lib" },
      { kind: "proc", target: "/proc" },
      { kind: "dev", target: "/dev" },
      { kind: "tmp", target: "/tmp" },
      { kind: "volume", target: "/data", name: "data" },
    ],
    rootfs: "/root/.kiln/rootfs/abc",
    volumeDirs: { data: "/root/.kiln/volumes/web/data" },
    uid: 1000,
    gid: 1000,
    workdir: "/app",
    env: [
      ["PORT", "8080"],
      ["A", "x y"],
    ],
    argv: ["/usr/local/bin/node", "/app/server.js"],
    tmpSizeBytes: 1024,
    stageDir: "/run/kiln-stage",
    hostPath: "/usr/bin:/bin",
  };
  const tools = { bwrap: "/usr/bin/bwrap", unshare: "/usr/bin/unshare", setpriv: "/usr/bin/setpriv", mount: "/usr/bin/mount", mkdir: "/usr/bin/mkdir", ln: "/usr/bin/ln", sh: "/bin/sh" };

  test("staged bwrap: root stages every source, drops to the image user, then bwrap builds the root", () => {
    const seccomp = Buffer.from([6, 0, 0, 0, 0, 0, 0xff, 0x7f]);
    const spec = stagedBwrapCommand({ ...input, seccomp, shmSizeBytes: 2048, stageFstabPath: "/root/.kiln/instances/web-1/stage.fstab" }, tools);
    assert.deepEqual(spec, {
      file: "/usr/bin/unshare",
      env: { PATH: "/usr/bin:/bin" },
      args: [
        "--mount", "--propagation", "private", "--",
        // the tmpfs, the file mount points, then every source bound by one `mount --all`
        "/bin/sh", "-c", BIND_STAGE_SCRIPT, "kiln-stage", "/usr/bin/mount", "/run/kiln-stage", "/root/.kiln/instances/web-1/stage.fstab",
        "/run/kiln-stage/1",
        "--",
        "/usr/bin/setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--inh-caps=-all", "--",
        "/usr/bin/bwrap",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "web-1",
        // bwrap's own user namespace maps the image user to itself; the app may create none
        "--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns",
        "--seccomp", "5",
        "--json-status-fd", "3", "--tmpfs", "/",
        "--ro-bind", "/run/kiln-stage/0", "/usr",
        "--ro-bind", "/run/kiln-stage/1", "/VERSION",
        "--symlink", "usr/lib", "/lib",
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", "2048", "--tmpfs", "/dev/shm",
        "--perms", "1777", "--size", "1024", "--tmpfs", "/tmp",
        "--bind", "/run/kiln-stage/6", "/data",
        "--remount-ro", "/", "--chdir", "/app", "--clearenv", "--args", "4",
        "--", "/usr/local/bin/node", "/app/server.js",
      ],
      // environment values may be secrets: never on a command line (ps), only through a pipe
      envArgs: ["--setenv", "PORT", "8080", "--setenv", "A", "x y", ""].join("\0"),
      // the filter goes through a pipe, fd 5, like the environment
      seccomp,
      // written by the provider into the instance's directory, read by the staging shell as root
      stageFstab: {
        path: "/root/.kiln/instances/web-1/stage.fstab",
        text:
          "/root/.kiln/rootfs/abc/usr /run/kiln-stage/0 none rbind,X-mount.mkdir 0 0\n" +
          "/root/.kiln/rootfs/abc/VERSION /run/kiln-stage/1 none rbind,X-mount.mkdir 0 0\n" +
          "/root/.kiln/volumes/web/data /run/kiln-stage/6 none rbind,X-mount.mkdir 0 0\n",
      },
    });
  });

  test("fstab fields: blanks and backslashes as octal escapes (the doc comment's examples)", () => {
    assert.equal(fstabField("/root/.kiln/rootfs/abc/usr"), "/root/.kiln/rootfs/abc/usr");
    assert.equal(fstabField("/home/a b/data"), "/home/a\\040b/data");
    assert.equal(fstabField("/x\ty\\z\n"), "/x\\011y\\134z\\012");
    assert.equal(stagingFstab([{ source: "/h/a b", target: "/s/0" }]), "/h/a\\040b /s/0 none rbind,X-mount.mkdir 0 0\n");
  });

  test("the fallback passes the environment as the environment, not as arguments", () => {
    const spec = chrootCommand(input, tools);
    assert.deepEqual(spec.env, { PORT: "8080", A: "x y" });
    assert.ok(!spec.args.some((a) => a.includes("x y")));
    assert.deepEqual(spec.args.slice(-8), ["/usr/bin/unshare", "--root=/run/kiln-stage", "--wd=/app", "--setgid=1000", "--setuid=1000", "--", "/usr/local/bin/node", "/app/server.js"]);
  });

  test("unprivileged bwrap maps the image user in a user namespace and binds the real paths", () => {
    const args = bwrapArgs(input, (m) => (m.kind === "volume" ? "/v" : "/img" + m.target));
    assert.deepEqual(args.slice(0, 12), ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "web-1", "--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns", "--json-status-fd"]);
    assert.ok(!args.includes("--unshare-net"), "instances share the host loopback");
    assert.ok(!args.includes("--die-with-parent"), "instances outlive the controller");
  });

  test("stage ops render as triples", () => {
    assert.deepEqual(
      renderStageOps([
        { op: "symlink", linkTarget: "a", target: "/b" },
        { op: "remount-ro", target: "/s" },
      ]),
      ["symlink", "a", "/b", "remount-ro", "-", "/s"],
    );
  });
});


test("FactCache: read once per key, failures read again, the oldest dropped past the bound", () => {
  const c = new FactCache(2);
  let reads = 0;
  const ok = (v: string) => () => (reads++, { ok: true, v });
  const okOnly = (x: { ok: boolean }) => x.ok;
  assert.deepEqual(c.get("a", ok("1"), okOnly), { ok: true, v: "1" });
  assert.deepEqual(c.get("a", ok("2"), okOnly), { ok: true, v: "1" }); // kept: not read again
  assert.equal(reads, 1);
  c.get("bad", () => (reads++, { ok: false }), okOnly);
  c.get("bad", () => (reads++, { ok: false }), okOnly);
  assert.equal(reads, 3); // a failure is not kept
  c.get("b", ok("b"), okOnly);
  c.get("c", ok("c"), okOnly); // a third key: "a" goes
  assert.deepEqual(c.get("a", ok("3"), okOnly), { ok: true, v: "3" });
  assert.equal(reads, 6);
});

describe("isLogOverCap (worked examples)", () => {
  for (const [size, max, want] of [[100, 1000, false], [1000, 1000, false], [1001, 1000, true], [5, 0, false]] as const)
    test(`${size} bytes, cap ${max} → ${want ? "rotate" : "keep"}`, () => assert.equal(isLogOverCap(size, max), want));
});

test("trustedPidNamespace: the doc comment's worked examples", () => {
  const stat = (pid: number, startTime: number, state = "S") => ({ pid, state, ppid: 1, pgrp: pid, startTime });
  const world = (procs: Record<number, { startTime: number; ns: number }>) => ({
    stat: (pid: number) => (procs[pid] ? stat(pid, procs[pid]!.startTime) : undefined),
    pidNamespaceOf: (pid: number) => procs[pid]?.ns,
  });
  const status = { childPid: 500, pidNamespace: 4026532979 };
  // init alive, start time as recorded → the namespace
  assert.equal(trustedPidNamespace(status, 1234, world({ 500: { startTime: 1234, ns: 4026532979 } })), 4026532979);
  // init alive, another start time (its pid reused) → undefined
  assert.equal(trustedPidNamespace(status, 1234, world({ 500: { startTime: 9999, ns: 4026532979 } })), undefined);
  // init gone → undefined (the number may be another instance's now)
  assert.equal(trustedPidNamespace(status, 1234, world({})), undefined);
  // no recorded start time (an older kiln): init alive inside that namespace → the namespace
  assert.equal(trustedPidNamespace(status, undefined, world({ 500: { startTime: 1, ns: 4026532979 } })), 4026532979);
  // no recorded start time, init alive elsewhere → undefined
  assert.equal(trustedPidNamespace(status, undefined, world({ 500: { startTime: 1, ns: 4026531836 } })), undefined);
  // a zombie init is gone
  assert.equal(trustedPidNamespace(status, 1234, { stat: (pid) => stat(pid, 1234, "Z"), pidNamespaceOf: () => 4026532979 }), undefined);
  // no status yet → undefined
  assert.equal(trustedPidNamespace({}, 1234, world({ 500: { startTime: 1234, ns: 1 } })), undefined);
});
