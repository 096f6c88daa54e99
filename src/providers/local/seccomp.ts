// The seccomp filter every local instance runs under, as a classic-BPF program bwrap loads
// (`--seccomp FD`: the raw `struct sock_filter` array). Pure: the program is data, built here and
// checked by table tests that run it on a small BPF interpreter.
//
// The policy is Docker's default profile read as a deny list for an unprivileged process: what
// Docker leaves out of its allow list (or allows only with a capability an instance never has)
// fails here with EPERM. It is a deny list, not Docker's allow list, so a runtime that needs a
// syscall kiln did not foresee keeps working; the calls that reach kernel attack surface or
// other processes are the ones listed. Facts per syscall (x86_64 numbers from the kernel's
// unistd_64.h; test/providers/seccomp.test.ts checks them against the header when it is installed):
//
//   namespaces    unshare, setns; clone with any CLONE_NEW* flag; clone3 → ENOSYS (its flags are in
//                 memory a filter cannot read, so libc falls back to clone, which is checked)
//   mounts        mount, umount2, pivot_root, and the new mount API (open_tree, move_mount, fsopen,
//                 fsconfig, fsmount, fspick, mount_setattr)
//   other procs   ptrace, process_vm_readv/writev, kcmp, pidfd_getfd
//   kernel        init_module, finit_module, delete_module, create_module, get_kernel_syms,
//                 query_module, kexec_load, kexec_file_load, bpf, perf_event_open, userfaultfd,
//                 io_uring_* (Docker dropped them too), keyctl, add_key, request_key (the keyring
//                 is not namespaced), syslog, iopl, ioperm, lookup_dcookie, uselib, ustat, sysfs,
//                 _sysctl, nfsservctl, quotactl, quotactl_fd, fanotify_init, open_by_handle_at,
//                 name_to_handle_at, vhangup
//   host state    reboot, swapon, swapoff, acct, settimeofday, clock_settime, clock_adjtime,
//                 adjtimex, mbind, set_mempolicy, get_mempolicy, move_pages
//   ABI           a syscall of another architecture (32-bit int 0x80) or of the x32 ABI (the
//                 0x40000000 bit) → EPERM: the numbers above are x86_64's only

/** AUDIT_ARCH_X86_64: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const X32_SYSCALL_BIT = 0x40000000;
export const EPERM = 1;
export const ENOSYS = 38;

export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ERRNO = 0x00050000;

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/** x86_64 numbers of the syscalls denied outright. */
export const DENIED_SYSCALLS_X86_64: Readonly<Record<string, number>> = {
  ptrace: 101,
  syslog: 103,
  uselib: 134,
  ustat: 136,
  sysfs: 139,
  vhangup: 153,
  pivot_root: 155,
  _sysctl: 156,
  adjtimex: 159,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  iopl: 172,
  ioperm: 173,
  create_module: 174,
  init_module: 175,
  delete_module: 176,
  get_kernel_syms: 177,
  query_module: 178,
  quotactl: 179,
  nfsservctl: 180,
  lookup_dcookie: 212,
  clock_settime: 227,
  mbind: 237,
  set_mempolicy: 238,
  get_mempolicy: 239,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  move_pages: 279,
  perf_event_open: 298,
  fanotify_init: 300,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  clock_adjtime: 305,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kcmp: 312,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  pidfd_getfd: 438,
  mount_setattr: 442,
  quotactl_fd: 443,
};
export const SYS_CLONE = 56;
export const SYS_CLONE3 = 435;

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little endian)
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG0_LOW = 16;

// Classic BPF opcodes (linux/bpf_common.h)
export const BPF = {
  LD_W_ABS: 0x20, // BPF_LD | BPF_W | BPF_ABS
  JEQ_K: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  JGE_K: 0x35, // BPF_JMP | BPF_JGE | BPF_K
  JSET_K: 0x45, // BPF_JMP | BPF_JSET | BPF_K
  RET_K: 0x06, // BPF_RET | BPF_K
} as const;

export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

type Target = number | "deny" | "allow" | "cloneCheck" | "enosys";
/** An instruction whose jump targets are still labels; resolved by assemble(). */
type Draft = { code: number; k: number; jt?: Target; jf?: Target; label?: string };

/**
 * The program, as instructions. Shape (jumps are forward only, as classic BPF requires):
 *
 *   ld arch; jeq X86_64 ? next : deny
 *   ld nr;   jge X32_BIT ? deny : next
 *   jeq clone → cloneCheck; jeq clone3 → enosys; jeq N → deny (each denied N)
 *   ret ALLOW
 *   cloneCheck: ld args[0] (low word); jset NAMESPACE_FLAGS ? deny : allow
 *   allow: ret ALLOW   deny: ret ERRNO(EPERM)   enosys: ret ERRNO(ENOSYS)
 */
export function planSeccompProgram(denied: Readonly<Record<string, number>> = DENIED_SYSCALLS_X86_64): BpfInsn[] {
  const numbers = [...new Set(Object.values(denied))].sort((a, b) => a - b);
  const drafts: Draft[] = [
    { code: BPF.LD_W_ABS, k: OFF_ARCH },
    { code: BPF.JEQ_K, k: AUDIT_ARCH_X86_64, jt: 0, jf: "deny" },
    { code: BPF.LD_W_ABS, k: OFF_NR },
    { code: BPF.JGE_K, k: X32_SYSCALL_BIT, jt: "deny", jf: 0 },
    { code: BPF.JEQ_K, k: SYS_CLONE, jt: "cloneCheck", jf: 0 },
    { code: BPF.JEQ_K, k: SYS_CLONE3, jt: "enosys", jf: 0 },
    ...numbers.map((n): Draft => ({ code: BPF.JEQ_K, k: n, jt: "deny", jf: 0 })),
    { code: BPF.RET_K, k: SECCOMP_RET_ALLOW },
    { code: BPF.LD_W_ABS, k: OFF_ARG0_LOW, label: "cloneCheck" },
    { code: BPF.JSET_K, k: CLONE_NAMESPACE_FLAGS, jt: "deny", jf: "allow" },
    { code: BPF.RET_K, k: SECCOMP_RET_ALLOW, label: "allow" },
    { code: BPF.RET_K, k: SECCOMP_RET_ERRNO | EPERM, label: "deny" },
    { code: BPF.RET_K, k: SECCOMP_RET_ERRNO | ENOSYS, label: "enosys" },
  ];
  return assemble(drafts);
}

/** Labels → relative forward offsets (jt/jf count instructions after the next one, at most 255). */
function assemble(drafts: readonly Draft[]): BpfInsn[] {
  const at = new Map<string, number>();
  drafts.forEach((d, i) => d.label && at.set(d.label, i));
  return drafts.map((d, i) => {
    const rel = (t: Target | undefined): number => {
      if (t === undefined) return 0;
      if (typeof t === "number") return t;
      const to = at.get(t);
      if (to === undefined) throw new Error(`seccomp: no label ${t}`);
      const off = to - i - 1;
      if (off < 0 || off > 255) throw new Error(`seccomp: jump to ${t} out of range (${off})`);
      return off;
    };
    return { code: d.code, jt: rel(d.jt), jf: rel(d.jf), k: d.k >>> 0 };
  });
}

/** The bytes bwrap reads from `--seccomp FD`: each `struct sock_filter` {u16 code; u8 jt; u8 jf; u32 k}, little endian. */
export function encodeSeccompProgram(prog: readonly BpfInsn[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((p, i) => {
    buf.writeUInt16LE(p.code, i * 8);
    buf.writeUInt8(p.jt, i * 8 + 2);
    buf.writeUInt8(p.jf, i * 8 + 3);
    buf.writeUInt32LE(p.k >>> 0, i * 8 + 4);
  });
  return buf;
}

let x64Filter: Buffer | undefined;

/**
 * The filter for this machine, or undefined where it does not apply (only x86_64 numbers are known).
 * The program is a constant: built once per process, the same bytes for every launch (callers only read it).
 */
export function seccompFilterFor(arch: string = process.arch): Buffer | undefined {
  if (arch !== "x64") return undefined;
  x64Filter ??= encodeSeccompProgram(planSeccompProgram());
  return x64Filter;
}
