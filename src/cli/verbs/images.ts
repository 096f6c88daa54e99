import type { Command } from "commander";
import { homePaths } from "../../home.js";
import { listImages, openStore } from "../../image/index.js";
import { readImageTree, type ImageTree, type ReleaseSite } from "../../ops/lineage.js";
import { resolveStateLocation } from "../../state/state-location.js";
import { ago, context, out, printJson, short, type Context, type GlobalOptions } from "../context.js";
import { mark, table } from "../output.js";

/** The top-level state of the workspace's home (each environment's is found from it). */
export function baseStateOf(ctx: Context): string {
  return resolveStateLocation({ stateDb: homePaths(ctx.home).stateDb, specState: ctx.loaded.spec.state }).location;
}

const site = (r: ReleaseSite) =>
  `${r.environment ?? "(default)"} ${r.service} ${r.release} ${r.live ? "live" : r.status}${r.instances > 0 ? `, ${r.instances} instance${r.instances === 1 ? "" : "s"}` : ""}`;

function renderTree(tree: ImageTree): void {
  if (tree.bases.length === 0) out("no images in the store");
  for (const b of tree.bases) {
    out(b.digest ? `base ${b.name ?? "?"} ${short(b.digest)}` : "no recorded base");
    for (const i of b.images) {
      out(`  ${i.ref} ${short(i.digest)}${i.patchOf ? `  patch of ${i.patchOf.ref ?? short(i.patchOf.digest)}` : ""}`);
      for (const r of i.releases) out(`    ${site(r)}`);
    }
  }
  if (tree.orphans.length > 0) {
    out("releases of images no tag names:");
    for (const r of tree.orphans) out(`  ${short(r.digest)}  ${site(r)}`);
  }
}

export function register(program: Command): void {
  program
    .command("images")
    .description("list baked images in the store; --tree shows their lineage: base → images (and patches) → releases → where they run")
    .option("--json", "print the list (or, with --tree, the tree: a stable contract, schemaVersion 1) as JSON")
    .option("--tree", "group images by base digest, with the image each one patches (kiln rebake --patch) and every environment's releases of it")
    .addHelpText(
      "after",
      `
With --tree, releases come from the state of every environment of this home (the image store is
shared by all of them): each shows its environment, service, release id, status (live, superseded,
…) and its instances.

Examples:
  kiln images --json
  kiln images --tree
  kiln images --tree --json | jq '.bases[].images[] | {ref, patchOf}'`,
    )
    .action(async (opts: { json?: boolean; tree?: boolean }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const store = openStore(ctx.home);
      if (opts.tree) {
        const tree = await readImageTree(store, ctx.home, baseStateOf(ctx));
        return opts.json ? printJson(tree) : renderTree(tree);
      }
      const images = await listImages(store);
      if (opts.json) return printJson({ images });
      const t = table(["image", "digest", "name", "created", "size"]);
      for (const i of images) t.push([i.ref, short(i.digest), i.timestampedName, ago(i.created), `${(i.size / 1e6).toFixed(1)} MB`]);
      out(t.toString());
    });
}
