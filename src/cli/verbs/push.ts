import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { homeFor } from "../../home.js";
import { exportSignaturesToLookaside, lookasideRoot, openStore, type Store } from "../../image/index.js";
import { signReference } from "../../ops/signing.js";
import { parseRegistryRef, pushImage } from "../../image/registry/index.js";
import { credentialsFrom } from "../../ops/credentials.js";
import { out, printJson, specFile, type GlobalOptions } from "../context.js";
import { blobEvents, progressFor, withProgress, type Progress } from "../progress.js";

export interface RegistryCliOptions {
  username?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
  json?: boolean;
}

/** The store: $KILN_HOME if set (no kiln.yaml needed), else .kiln/ beside kiln.yaml. */
export function storeFor(cmd: Command): Store {
  const home = process.env.KILN_HOME ? homeFor("") : homeFor(specFile(cmd.optsWithGlobals<GlobalOptions>()));
  return openStore(home);
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** Per-blob progress on stderr (progress.ts): a bar per blob on a terminal, a line when each starts and ends otherwise; none with --json or --quiet. */
export function transferProgress(cmd: Command, json: boolean | undefined): Progress {
  return progressFor({ json, quiet: cmd.optsWithGlobals<GlobalOptions>().quiet });
}

export function registryOptions(c: Command): Command {
  return c
    .option("--username <name>", "registry user (password from --password-stdin or KILN_REGISTRY_PASSWORD)")
    .option("--password-stdin", "read the registry password from standard input")
    .option("--insecure", "plain HTTP to a registry that is not on 127.0.0.1/localhost")
    .option("--json", "print the result as JSON (no progress)");
}

export function register(program: Command): void {
  registryOptions(
    program
      .command("push <ref> <target>")
      .description("upload an image from the store to an OCI registry (REGISTRY/REPO[:TAG]); prints its digest and reference")
      .option("--sign", "then sign the pushed reference with kiln's key (like `kiln sign`)")
      .option("--key <fingerprint>", "the signing key for --sign (default: the keyring's only secret key)"),
  )
    .addHelpText(
      "after",
      `
REF is a store reference (NAME:VERSION or a digest). TARGET is REGISTRY/REPO[:TAG];
without a tag the image's version is used. Blobs the registry already has are not
sent again. The registry gets kiln's manifest bytes, so the digest it reports is
the digest kiln baked. http:// is used only for 127.0.0.1/localhost (or --insecure).
The image's referrers (SBOM, signatures) go up with it; signatures for this
repository are also written to the lookaside ($KILN_HOME/sigstore, see kiln sign).

Credentials: --username NAME --password-stdin, or KILN_REGISTRY_USERNAME and
KILN_REGISTRY_PASSWORD in the environment; Basic and Bearer (token) auth.

Exit status: 0 pushed, 1 the registry refused or could not be reached, 2 bad input.

Examples:
  kiln push hello:1.0.0 127.0.0.1:5000/hello            # tag 1.0.0
  kiln push sha256:3f2a… 127.0.0.1:5000/team/hello:stable --json
  printf %s "$TOKEN" | kiln push hello:1.0.0 ghcr.io/acme/hello --username acme --password-stdin`,
    )
    .action(async (ref: string, targetArg: string, opts: RegistryCliOptions & { sign?: boolean; key?: string }, cmd: Command) => {
      const target = parseRegistryRef(targetArg);
      const credentials = await credentialsFrom(opts);
      const store = storeFor(cmd);
      const started = Date.now();
      const r = await withProgress(transferProgress(cmd, opts.json), (p) => pushImage(store, ref, target, { credentials, insecure: opts.insecure, onProgress: blobEvents(p, "push") }));
      const signed = opts.sign ? await signReference(store, r.tagReference ?? r.reference, { key: opts.key, credentials, insecure: opts.insecure }) : undefined;
      const lookaside = await exportSignaturesToLookaside(store, r.digest, target.registry, target.repository, lookasideRoot(store.root));
      const durationMs = Date.now() - started;
      if (opts.json) return printJson({ ...r, ...(signed ? { signed } : {}), lookaside, durationMs });
      out(`${r.tagReference ?? r.reference} ${r.digest}`);
      if (signed) out(`  signed by ${signed.fingerprint} for ${signed.identity}`);
      if (lookaside.length > 0) out(`  ${lookaside.length} signature${lookaside.length === 1 ? "" : "s"} in the lookaside ${lookasideRoot(store.root)}`);
      out(`  reference ${r.reference}`);
      if (r.referrers.pushed.length > 0) out(`  ${r.referrers.pushed.length} referrer${r.referrers.pushed.length === 1 ? "" : "s"} (${[...new Set(r.referrers.pushed.map((d) => d.artifactType))].join(", ")}) ${r.referrers.via === "api" ? "indexed by the registry" : `listed at tag ${r.referrers.via === "tag" ? `sha256-${r.digest.slice(7, 19)}…` : ""}`}`);
      out(`  ${r.blobs.transferred} blobs pushed (${mb(r.blobs.bytesTransferred)}), ${r.blobs.skipped} already there (${mb(r.blobs.bytesSkipped)}), ${durationMs} ms`);
    });
}
