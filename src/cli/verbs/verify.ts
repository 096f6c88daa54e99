import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { resolveRef, unpackedDigests, verifyRootfs, type RootfsDrift } from "../../image/index.js";
import { connectDocker } from "../../providers/docker/engine.js";
import { dockerDrift, type ContainerDrift } from "../../providers/docker/drift.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";
import { storeFor } from "./push.js";

export function register(program: Command): void {
  program
    .command("verify [ref]")
    .description("drift check: re-hash the unpacked root filesystems local instances run from against their images' layers")
    .option("--docker", "check the running Docker instances of kiln.yaml's service instead (docker diff)")
    .option("--json", "print the findings as JSON")
    .addHelpText(
      "after",
      `
Without REF, every root unpacked in the store ($KILN_HOME/rootfs/<hex>) is checked;
with REF (NAME:VERSION or a digest), that image's root. The layers are read again
from the store (each blob verified by its digest) and compared with the tree on
disk: a file whose sha256 differs (modified), a missing, added, retyped or
re-pointed entry is a finding. /dev, /proc, /sys and /tmp are the sandbox's mount
points and are left out.

With --docker, each running container of kiln.yaml's service is checked with the
engine's diff (docker diff): any change outside the declared volumes and /tmp is a
finding (an instance is never modified after launch: replace it instead).

Exit status: 0 no drift, 1 drift found, 2 bad input (an image never unpacked).

Examples:
  kiln verify
  kiln verify notes:1.0.0 --json
  kiln verify --docker`,
    )
    .action(async (ref: string | undefined, opts: { json?: boolean; docker?: boolean }, cmd: Command) => {
      if (opts.docker) {
        const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
        const found: ContainerDrift[] = await dockerDrift(connectDocker(), ctx.loaded.spec.name, ctx.loaded.spec.volumes.map((v) => v.path));
        const drifted = found.filter((c) => c.findings.length > 0);
        if (opts.json) printJson({ ok: drifted.length === 0, containers: found });
        else {
          if (found.length === 0) out(`no running Docker instance of ${ctx.loaded.spec.name}`);
          for (const c of found) {
            out(`${c.findings.length === 0 ? "ok   " : "DRIFT"} ${c.instance} (${c.container}, ${c.digest.slice(0, 19)}…)${c.findings.length > 0 ? `: ${c.findings.length} change${c.findings.length === 1 ? "" : "s"}` : ""}`);
            for (const f of c.findings.slice(0, 50)) out(`  ${f.kind.padEnd(9)} ${f.path}`);
          }
        }
        if (drifted.length > 0) process.exitCode = 1;
        return;
      }
      const store = storeFor(cmd);
      const unpacked = await unpackedDigests(store);
      let digests = unpacked;
      if (ref !== undefined) {
        const d = await resolveRef(store, ref);
        if (!unpacked.includes(d)) throw new KilnError("KILN_E_NOT_FOUND", `${ref} (${d}) has no unpacked root in the store`, { hint: "a root is unpacked when a local instance of the image first starts" });
        digests = [d];
      }
      const results: RootfsDrift[] = [];
      for (const d of digests) results.push(await verifyRootfs(store, d));
      const drifted = results.filter((r) => r.findings.length > 0);
      if (opts.json) printJson({ ok: drifted.length === 0, roots: results });
      else {
        if (results.length === 0) out("no unpacked roots in the store (nothing runs locally from it yet)");
        for (const r of results) {
          out(`${r.findings.length === 0 ? "ok   " : "DRIFT"} ${r.digest} ${r.checked} entries${r.findings.length > 0 ? `, ${r.findings.length} finding${r.findings.length === 1 ? "" : "s"}` : ""}`);
          for (const f of r.findings.slice(0, 50)) out(`  ${f.kind.padEnd(12)} /${f.path}${f.detail ? ` (${f.detail})` : ""}`);
          if (r.findings.length > 50) out(`  … ${r.findings.length - 50} more (--json lists all)`);
        }
      }
      if (drifted.length > 0) process.exitCode = 1;
    });
}
