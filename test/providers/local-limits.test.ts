// The local provider's resource limits as data (limits.ts): host detection, the choice of
// mechanism, the plan per mechanism and the command wrappers — the doc comments' worked examples.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CPU_PERIOD_US, cgroupEntry, cgroupPath, chooseEnforcement, homeKey, limitHitsLine, parseCgroupHost, planLimits, rlimitEntry, type CgroupHost } from "../../src/providers/local/limits.js";

const V1_MOUNTINFO = [
  "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
  "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "38 31 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
  "40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const V1_SELF = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

describe("parseCgroupHost", () => {
  it("a v1 host (this project's machine): each controller's mount and our cgroup in it; the hybrid's v2 offers nothing", () => {
    const h = parseCgroupHost(V1_MOUNTINFO, V1_SELF, "");
    assert.deepEqual(h.v1, {
      cpu: { mount: "/sys/fs/cgroup/cpu", own: "/" },
      memory: { mount: "/sys/fs/cgroup/memory", own: "/process_api/abc" },
      pids: { mount: "/sys/fs/cgroup/pids", own: "/" },
    });
    assert.deepEqual(h.v2, { mount: "/sys/fs/cgroup/unified", own: "/", controllers: [] });
  });

  it("a combined cpu,cpuacct hierarchy counts for cpu", () => {
    const h = parseCgroupHost("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct", "2:cpu,cpuacct:/kiln.service");
    assert.deepEqual(h.v1.cpu, { mount: "/sys/fs/cgroup/cpu,cpuacct", own: "/kiln.service" });
  });

  it("a pure v2 host", () => {
    const h = parseCgroupHost("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw", "0::/user.slice", "cpuset cpu io memory pids");
    assert.deepEqual(h, { v1: {}, v2: { mount: "/sys/fs/cgroup", own: "/user.slice", controllers: ["cpuset", "cpu", "io", "memory", "pids"] } });
  });

  it("a read-only mount is skipped (nothing can be created in it)", () => {
    const h = parseCgroupHost("35 31 0:32 / /sys/fs/cgroup/memory ro,relatime - cgroup cgroup rw,memory", "4:memory:/");
    assert.deepEqual(h.v1, {});
  });
});

const v1Host: CgroupHost = parseCgroupHost(V1_MOUNTINFO, V1_SELF, "");
const v2Host: CgroupHost = { v1: {}, v2: { mount: "/sys/fs/cgroup", own: "/", controllers: ["memory", "pids", "cpu"] } };

describe("chooseEnforcement", () => {
  const rows: [string, CgroupHost, boolean, string][] = [
    ["root, v2 offering memory pids cpu", v2Host, true, "cgroup-v2"],
    ["root, v1 memory + pids + cpu mounted (hybrid v2 empty)", v1Host, true, "cgroup-v1"],
    ["root, v1 without pids", { v1: { memory: v1Host.v1.memory!, cpu: v1Host.v1.cpu! } }, true, "rlimit"],
    ["not root, v1 host", v1Host, false, "rlimit"],
    ["not root, v2 host", v2Host, false, "rlimit"],
  ];
  for (const [name, host, root, want] of rows) it(`${name} → ${want}`, () => assert.equal(chooseEnforcement(host, root), want));
});

describe("planLimits", () => {
  const home = "/var/lib/kiln";
  const key = homeKey(home);
  it("paths are per home: <mount><own>/kiln/<home key>/<id>", () => {
    assert.match(key, /^[0-9a-f]{12}$/);
    assert.notEqual(homeKey("/other"), key);
    assert.equal(cgroupPath("/sys/fs/cgroup/memory", "/process_api/abc", home, "i1"), `/sys/fs/cgroup/memory/process_api/abc/kiln/${key}/i1`);
  });

  it("memory 64Mi, cgroup-v1 → limit_in_bytes then (optional) memsw", () => {
    const p = planLimits({ memoryBytes: 64 * 1024 * 1024 }, "i1", home, v1Host, "cgroup-v1");
    assert.deepEqual(p.cgroups, [
      {
        dir: `/sys/fs/cgroup/memory/process_api/abc/kiln/${key}/i1`,
        writes: [
          { file: "memory.limit_in_bytes", value: "67108864" },
          { file: "memory.memsw.limit_in_bytes", value: "67108864", optional: true },
        ],
      },
    ]);
    assert.deepEqual(p.unenforced, []);
    assert.equal(p.summary, "memory 64Mi");
  });

  it("pids 32 and cpu 0.5, cgroup-v1 → pids.max; CFS period and quota", () => {
    const p = planLimits({ pids: 32, cpu: 0.5 }, "i1", home, v1Host, "cgroup-v1");
    assert.deepEqual(p.cgroups, [
      { dir: `/sys/fs/cgroup/pids/kiln/${key}/i1`, writes: [{ file: "pids.max", value: "32" }] },
      { dir: `/sys/fs/cgroup/cpu/kiln/${key}/i1`, writes: [{ file: "cpu.cfs_period_us", value: String(CPU_PERIOD_US) }, { file: "cpu.cfs_quota_us", value: "50000" }] },
    ]);
  });

  it("memory 64Mi + cpu 2, cgroup-v2 → one directory", () => {
    const p = planLimits({ memoryBytes: 64 * 1024 * 1024, cpu: 2 }, "i1", home, v2Host, "cgroup-v2");
    assert.deepEqual(p.cgroups, [
      {
        dir: `/sys/fs/cgroup/kiln/${key}/i1`,
        writes: [
          { file: "memory.max", value: "67108864" },
          { file: "memory.swap.max", value: "0", optional: true },
          { file: "cpu.max", value: "200000 100000" },
        ],
      },
    ]);
  });

  it("rlimit mode: data and nproc; cpu said to be unenforced", () => {
    const p = planLimits({ memoryBytes: 64 * 1024 * 1024, pids: 32, cpu: 1 }, "i1", home, v1Host, "rlimit");
    assert.deepEqual(p.cgroups, []);
    assert.deepEqual(p.rlimits, { data: 67108864, nproc: 32 });
    assert.equal(p.unenforced.length, 1);
    assert.match(p.unenforced[0]!, /^cpu 1 /);
  });

  it("no limits: nothing to do", () => {
    const p = planLimits(undefined, "i1", home, v1Host, "cgroup-v1");
    assert.deepEqual({ cgroups: p.cgroups, rlimits: p.rlimits, summary: p.summary }, { cgroups: [], rlimits: {}, summary: "none" });
  });
});

describe("command wrappers", () => {
  const cmd = { file: "/usr/bin/unshare", args: ["--mount", "--", "x"], env: { PATH: "/usr/bin" } };
  it("cgroupEntry: a shell that joins each cgroup.procs, then execs the same command (same env)", () => {
    const out = cgroupEntry(cmd, [{ dir: "/cg/memory/i1", writes: [] }, { dir: "/cg/pids/i1", writes: [] }], "/bin/sh");
    assert.equal(out.file, "/bin/sh");
    assert.deepEqual(out.args.slice(2), ["kiln-cgroup", "/cg/memory/i1/cgroup.procs", "/cg/pids/i1/cgroup.procs", "--", "/usr/bin/unshare", "--mount", "--", "x"]);
    assert.equal(out.args[0], "-c");
    assert.match(out.args[1]!, /echo \$\$ > "\$1"/);
    assert.match(out.args[1]!, /exec "\$@"/);
    assert.deepEqual(out.env, cmd.env);
    assert.equal(cgroupEntry(cmd, [], "/bin/sh"), cmd);
  });

  it("rlimitEntry: prlimit with hard = soft, then the command", () => {
    assert.deepEqual(rlimitEntry(cmd, { data: 100, nproc: 8 }, "/usr/bin/prlimit"), { ...cmd, file: "/usr/bin/prlimit", args: ["--data=100:100", "--nproc=8:8", "--", "/usr/bin/unshare", "--mount", "--", "x"] });
    assert.equal(rlimitEntry(cmd, {}, "/usr/bin/prlimit"), cmd);
  });
});

describe("limitHitsLine", () => {
  it("the doc comment's examples", () => {
    assert.equal(limitHitsLine({ oomKills: 1, pidsRefused: 0 }, { memoryBytes: 64 * 1024 * 1024 }), "resources: the kernel killed 1 process at the memory limit (64Mi)");
    assert.equal(limitHitsLine({ oomKills: 0, pidsRefused: 40 }, { pids: 32 }), "resources: 40 forks were refused at the pids limit (32)");
    assert.equal(limitHitsLine({ oomKills: 0, pidsRefused: 0 }, { pids: 32 }), undefined);
  });
});
