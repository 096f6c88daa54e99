// The seccomp program, run on a small classic-BPF interpreter: each row is a syscall an instance
// might make and the answer the kernel would give it. The integration tier
// (test/providers/integration/local-sandbox.test.ts) checks the same answers inside a real sandbox.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  AUDIT_ARCH_X86_64, BPF, DENIED_SYSCALLS_X86_64, ENOSYS, EPERM, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SYS_CLONE, SYS_CLONE3,
  encodeSeccompProgram, planSeccompProgram, seccompFilterFor, type BpfInsn,
} from "../../src/providers/local/seccomp.js";

/** Runs a program on struct seccomp_data { nr, arch, ip, args[6] } as the kernel would. */
function run(prog: readonly BpfInsn[], d: { nr: number; arch?: number; args?: number[] }): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(d.nr, 0);
  data.writeUInt32LE(d.arch ?? AUDIT_ARCH_X86_64, 4);
  (d.args ?? []).forEach((a, i) => data.writeBigUInt64LE(BigInt(a), 16 + 8 * i));
  let acc = 0;
  for (let pc = 0, steps = 0; pc < prog.length && steps < 10_000; steps++) {
    const p = prog[pc]!;
    switch (p.code) {
      case BPF.LD_W_ABS: acc = data.readUInt32LE(p.k); pc++; break;
      case BPF.JEQ_K: pc += 1 + (acc === p.k ? p.jt : p.jf); break;
      case BPF.JGE_K: pc += 1 + (acc >= p.k ? p.jt : p.jf); break;
      case BPF.JSET_K: pc += 1 + ((acc & p.k) !== 0 ? p.jt : p.jf); break;
      case BPF.RET_K: return p.k;
      default: throw new Error(`unknown opcode ${p.code}`);
    }
  }
  throw new Error("fell off the program");
}

const prog = planSeccompProgram();
const allow = SECCOMP_RET_ALLOW;
const eperm = SECCOMP_RET_ERRNO | EPERM;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWNS = 0x00020000;
const FORK_FLAGS = 0x01200011; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, what glibc's fork passes
const THREAD_FLAGS = 0x003d0f00; // pthread_create's: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, PARENT_SETTID, CHILD_CLEARTID

describe("the seccomp program (worked examples)", () => {
  const rows: [string, Parameters<typeof run>[1], number][] = [
    ["read (0) is allowed", { nr: 0 }, allow],
    ["openat (257) is allowed", { nr: 257 }, allow],
    ["fork: clone without namespace flags is allowed", { nr: SYS_CLONE, args: [FORK_FLAGS] }, allow],
    ["a thread: clone with thread flags is allowed", { nr: SYS_CLONE, args: [THREAD_FLAGS] }, allow],
    ["clone(CLONE_NEWUSER) → EPERM", { nr: SYS_CLONE, args: [CLONE_NEWUSER | 17] }, eperm],
    ["clone(CLONE_NEWNET) → EPERM", { nr: SYS_CLONE, args: [CLONE_NEWNET] }, eperm],
    ["clone(CLONE_NEWNS | fork flags) → EPERM", { nr: SYS_CLONE, args: [CLONE_NEWNS | FORK_FLAGS] }, eperm],
    ["clone3 → ENOSYS (libc falls back to clone)", { nr: SYS_CLONE3 }, SECCOMP_RET_ERRNO | ENOSYS],
    ["unshare → EPERM", { nr: 272, args: [CLONE_NEWUSER] }, eperm],
    ["mount → EPERM", { nr: 165 }, eperm],
    ["ptrace → EPERM", { nr: 101 }, eperm],
    ["keyctl → EPERM", { nr: 250 }, eperm],
    ["bpf → EPERM", { nr: 321 }, eperm],
    ["io_uring_setup → EPERM", { nr: 425 }, eperm],
    ["an x32 syscall (read | 0x40000000) → EPERM", { nr: 0x40000000 }, eperm],
    ["a 32-bit (i386) syscall → EPERM", { nr: 3, arch: 0x40000003 }, eperm],
  ];
  for (const [what, d, want] of rows) it(what, () => assert.equal(run(prog, d), want));

  it("denies every listed syscall and allows the one after each", () => {
    for (const [name, nr] of Object.entries(DENIED_SYSCALLS_X86_64)) {
      assert.equal(run(prog, { nr }), eperm, name);
      if (!Object.values(DENIED_SYSCALLS_X86_64).includes(nr + 1) && nr + 1 !== SYS_CLONE && nr + 1 !== SYS_CLONE3) assert.equal(run(prog, { nr: nr + 1 }), allow, `${name} + 1`);
    }
  });

  it("is encoded as 8-byte sock_filter records, little endian", () => {
    const b = encodeSeccompProgram(prog);
    assert.equal(b.length, prog.length * 8);
    assert.equal(b.readUInt16LE(0), BPF.LD_W_ABS);
    assert.equal(b.readUInt32LE(4), 4); // offset of arch
    assert.equal(b.readUInt32LE(12), AUDIT_ARCH_X86_64);
    assert.ok(prog.length < 4096, "BPF_MAXINSNS");
    assert.deepEqual(seccompFilterFor("x64"), b);
    assert.equal(seccompFilterFor("arm64"), undefined);
  });

  it("uses the numbers of the kernel's x86_64 header", (t) => {
    const header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    if (!existsSync(header)) return t.skip(`${header} is not installed (linux-libc-dev)`);
    const text = readFileSync(header, "utf8");
    for (const [name, nr] of Object.entries({ ...DENIED_SYSCALLS_X86_64, clone: SYS_CLONE, clone3: SYS_CLONE3 })) {
      const m = new RegExp(`#define __NR_${name} (\\d+)`).exec(text);
      assert.ok(m, `${name} is in the header`);
      assert.equal(Number(m[1]), nr, name);
    }
  });
});

describe("missingBwrapOptions (worked examples)", () => {
  it("bubblewrap 0.8's --help lacks nothing; 0.4's lacks --disable-userns", async () => {
    const { missingBwrapOptions } = await import("../../src/providers/local/local-provider.js");
    const v08 = "    --args FD                    Parse NUL-separated args from FD\n    --disable-userns             Disable further use of user namespaces inside sandbox\n    --seccomp FD                 Load and use seccomp rules from FD (not repeatable)\n    --json-status-fd FD          Write container info to FD\n";
    assert.deepEqual(missingBwrapOptions(v08), []);
    const v04 = "    --args FD                    Parse NUL-separated args from FD\n    --seccomp FD                 Load and use seccomp rules from FD\n    --json-status-fd FD          Write container info to FD\n";
    assert.deepEqual(missingBwrapOptions(v04), ["--disable-userns"]);
    assert.deepEqual(missingBwrapOptions(""), ["--disable-userns", "--seccomp", "--json-status-fd", "--args"]);
  });
});
