import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { parseRegistryRef, pullImage } from "../../image/registry/index.js";
import { checkRefParts, splitRef } from "../../image/ref.js";
import { out, printJson } from "../context.js";
import { exportSignaturesToLookaside, lookasideRoot } from "../../image/index.js";
import { credentialsFrom } from "../../ops/credentials.js";
import { blobEvents, withProgress } from "../progress.js";
import { registryOptions, storeFor, transferProgress, type RegistryCliOptions } from "./push.js";

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export function register(program: Command): void {
  registryOptions(
    program
      .command("pull <source>")
      .description("fetch an image from an OCI registry into the store, verifying every blob; prints its digest")
      .option("--tag <name:version>", "also tag the image in the store (tags never move)"),
  )
    .addHelpText(
      "after",
      `
SOURCE is REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:…. Every blob is hashed while
it is written and kept only if it matches its digest; the manifest is stored last.
A multi-platform index resolves to its linux/<this machine> image. Deploy the
result by digest: \`kiln deploy sha256:…\` (or deploy the registry reference directly).

Exit status: 0 pulled, 1 the registry refused or could not be reached, 2 bad input,
a missing repository/tag, or content that does not match its digest.

Examples:
  kiln pull 127.0.0.1:5000/hello:1.0.0 --tag hello:1.0.0
  kiln pull 127.0.0.1:5000/hello@sha256:3f2a… --json
  KILN_REGISTRY_USERNAME=ci KILN_REGISTRY_PASSWORD=… kiln pull registry.example.com/team/hello:2.1.0`,
    )
    .action(async (sourceArg: string, opts: RegistryCliOptions & { tag?: string }, cmd: Command) => {
      const source = parseRegistryRef(sourceArg);
      if (opts.tag !== undefined) {
        const parts = splitRef(opts.tag);
        if (!parts) throw new KilnError("KILN_E_USAGE", `--tag ${JSON.stringify(opts.tag)} is not NAME:VERSION`, { hint: 'e.g. --tag hello:1.0.0' });
        checkRefParts(parts.name, parts.version);
      }
      const credentials = await credentialsFrom(opts);
      const store = storeFor(cmd);
      const started = Date.now();
      const r = await withProgress(transferProgress(cmd, opts.json), (p) => pullImage(store, source, { credentials, insecure: opts.insecure, tag: opts.tag, onProgress: blobEvents(p, "pull") }));
      const lookaside = await exportSignaturesToLookaside(store, r.digest, source.registry, source.repository, lookasideRoot(store.root));
      const durationMs = Date.now() - started;
      if (opts.json) return printJson({ ...r, lookaside, durationMs });
      out(r.digest);
      out(`  reference ${r.reference}${r.indexDigest ? ` (from index ${r.indexDigest})` : ""}`);
      if (lookaside.length > 0) out(`  ${lookaside.length} signature${lookaside.length === 1 ? "" : "s"} in the lookaside ${lookasideRoot(store.root)}`);
      if (r.tagged) out(`  tagged ${r.tagged.ref}${r.tagged.result === "exists" ? " (already)" : ""}`);
      if (r.referrers.pulled.length > 0) out(`  ${r.referrers.pulled.length} referrer${r.referrers.pulled.length === 1 ? "" : "s"} (${[...new Set(r.referrers.pulled.map((d) => d.artifactType))].join(", ")}) kept`);
      for (const s of r.referrers.skipped) process.stderr.write(`warning: referrer ${s.digest} not kept: ${s.reason}\n`);
      out(`  ${r.blobs.transferred} blobs fetched (${mb(r.blobs.bytesTransferred)}), ${r.blobs.skipped} already in the store, ${durationMs} ms`);
    });
}
