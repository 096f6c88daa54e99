import type { Command } from "commander";
import { DEFAULT_KEEP, gcHome, type GcReport } from "../../doctor/index.js";
import { out, printJson, short, type GlobalOptions } from "../context.js";
import { locateHome, parseKeep } from "./doctor.js";

export function mb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

function render(r: GcReport): void {
  const verb = r.dryRun ? "would remove" : "removed";
  out(`kept ${r.kept.length} image(s):`);
  for (const k of r.kept) out(`  ${short(k.digest)}  ${k.refs.join(", ") || "(untagged)"}  — ${k.reasons.join("; ")}`);
  if (r.removedTags.length) out(`${verb} ${r.removedTags.length} tag(s): ${r.removedTags.map((t) => t.ref).join(", ")}`);
  const blobBytes = r.removedBlobs.reduce((n, b) => n + b.size, 0);
  out(`${verb} ${r.removedBlobs.length} of ${r.blobsBefore.count} blob(s) (${mb(blobBytes)} of ${mb(r.blobsBefore.bytes)})`);
  if (r.recentBlobs.length) out(`kept ${r.recentBlobs.length} unreferenced blob(s) written in the last minutes (a bake may be using them)`);
  const rootfsBytes = r.removedRootfs.reduce((n, x) => n + x.bytes, 0);
  out(`${verb} ${r.removedRootfs.length} unpacked rootfs tree(s) (${mb(rootfsBytes)}); kept ${r.keptRootfs.length}`);
  const layerBytes = r.removedLayers.reduce((n, x) => n + x.bytes, 0);
  out(`${verb} ${r.removedLayers.length} unpacked layer(s) (${mb(layerBytes)}); kept ${r.keptLayers.length}, used by kept images`);
  if (r.removedInstanceLogs.length) {
    const logBytes = r.removedInstanceLogs.reduce((n, x) => n + x.bytes, 0);
    out(`${verb} the kept logs of ${r.removedInstanceLogs.length} terminated instance(s) of releases outside the window (${mb(logBytes)})`);
  }
  if (r.engineImages) {
    out(`${verb} ${r.engineImages.removed.length} image(s) from the Docker Engine that no kept release needs; kept ${r.engineImages.kept.length}`);
    for (const k of r.engineImages.kept) out(`  ${short(k.id)}  — ${k.reasons.join("; ")}`);
  }
  for (const w of r.warnings) out(`warning: ${w}`);
  out(`${r.dryRun ? "would free" : "freed"} ${mb(r.bytesFreed)}${r.dryRun ? " (dry run: nothing was changed)" : ""}`);
}

export function register(program: Command): void {
  program
    .command("gc")
    .description("remove images, unpacked root filesystems and terminated instances' kept logs that no release in the keep window, instance or tag needs")
    .option("--keep <n>", "keep the images of the newest N releases of every service", String(DEFAULT_KEEP))
    .option("--prune-tags", "also remove tags (and images) that nothing pins; by default every tag is kept")
    .option("--dry-run", "show what would be removed and why the rest is kept; change nothing")
    .option("--json", "print the report as JSON (a stable contract, schemaVersion 1)")
    .addHelpText(
      "after",
      "\nAlways kept: the images of the newest N releases of every service, the live release and its\nrollback target, the target and rollback target of a running rollout, every digest an instance\nruns, and (unless --prune-tags) every tagged image. Unpacked root filesystems are a cache: only\nthose of pinned releases and instances are kept. The kept logs of terminated instances go with\ntheir release once it leaves the window. Runs under the store's lock, so a concurrent\nbake either completes first or fails cleanly and can be repeated.\nWith provider docker, the images kiln loaded into the Docker Engine that nothing above keeps\nare removed from it too (never one the engine has a tag for or a container uses).\n\nExamples:\n  kiln gc --dry-run\n  kiln gc --keep 3 --prune-tags\n  kiln gc --json | jq .bytesFreed",
    )
    .action(async (opts: { keep: string; pruneTags?: boolean; dryRun?: boolean; json?: boolean }, cmd: Command) => {
      const keep = parseKeep(opts.keep);
      const at = locateHome(cmd.optsWithGlobals<GlobalOptions>());
      const report = await gcHome({ home: at.home, keep, pruneTags: opts.pruneTags, dryRun: opts.dryRun, services: at.service ? [at.service] : [], provider: at.provider, state: at.baseState.location });
      if (opts.json) printJson(report);
      else render(report);
    });
}
