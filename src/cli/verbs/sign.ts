import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { hostname } from "node:os";
import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { checkProvenance, exportKeys, findKey, generateKey, importKeys, keyringDir, listKeys, lookasideRoot, lookasideUrl, resolveRef, verifierConfig } from "../../image/index.js";
import { credentialsFrom } from "../../ops/credentials.js";
import { signReference } from "../../ops/signing.js";
import { out, printJson } from "../context.js";
import { registryOptions, storeFor, type RegistryCliOptions } from "./push.js";

export function register(program: Command): void {
  registryOptions(
    program
      .command("sign <ref>")
      .description("sign an image with a key of kiln's keyring (GPG simple signing, verified by skopeo/podman under a signedBy policy)")
      .option("--identity <registry/repo:tag>", "the reference the signature vouches for (required for a store ref)")
      .option("--key <fingerprint>", "the signing key (default: the keyring's only secret key)"),
  )
    .addHelpText(
      "after",
      `
REF is a registry reference (REGISTRY/REPO:TAG or …@sha256:…): kiln fetches and
hashes its manifest, signs that digest for that reference and uploads the
signature as an artifact referring to the image (it travels with push and pull).
REF may also be a store ref (NAME:VERSION or a digest) with --identity: the
signature is kept in the store and goes up with the next \`kiln push\`.

Every signature is also written to the lookaside directory skopeo reads:
$KILN_HOME/sigstore/<registry>/<repo>@sha256=<hex>/signature-N (KILN_LOOKASIDE
overrides the directory). \`kiln keys policy\` writes a matching policy.json and
registries.d for skopeo.

Exit status: 0 signed, 1 the registry failed, 2 bad input or no signing key.

Examples:
  kiln keys generate
  kiln push notes:1.0.0 127.0.0.1:5000/notes && kiln sign 127.0.0.1:5000/notes:1.0.0
  kiln sign notes:1.0.0 --identity 127.0.0.1:5000/notes:1.0.0 --json`,
    )
    .action(async (ref: string, opts: RegistryCliOptions & { identity?: string; key?: string }, cmd: Command) => {
      const store = storeFor(cmd);
      const r = await signReference(store, ref, { identity: opts.identity, key: opts.key, credentials: await credentialsFrom(opts), insecure: opts.insecure });
      if (opts.json) return printJson(r);
      out(`signed ${r.identity} ${r.digest}`);
      out(`  key       ${r.fingerprint}`);
      out(`  signature ${r.artifact.digest} (in the store; travels with push/pull)`);
      out(`  lookaside ${r.lookasideFile}`);
      if (r.uploaded) out(`  uploaded to the registry (${r.uploaded.via === "api" ? "indexed by the registry" : "listed at the referrers tag"})`);
    });

  program
    .command("provenance <ref>")
    .description("print the build provenance (in-toto Statement v1, SLSA provenance v1) kiln attached at bake, and check its signatures")
    .option("--key <fingerprint...>", "keys whose signature counts (default: every key in kiln's keyring)")
    .option("--json", "print the statement and the check as JSON")
    .addHelpText(
      "after",
      `
The statement names the image by digest and lists what the bake used: kiln.yaml's
sha256, the git revision, the base image's digest, the runtime archive's hash, the
npm lockfile's sha256, the SBOM's digest. \`kiln sign\` signs it the same way as the
image, with the same key: a DSSE envelope whose signature is an OpenPGP detached
signature over DSSE's pre-authentication encoding. Both travel with push and pull.

Exit status: 0 a signature by a trusted key verifies (or --json), 1 none does, 2 no statement.

Examples:
  kiln provenance notes:1.0.0
  kiln provenance sha256:3f2a… --key 2357CC5420A2F8325626FA35DAAFB84ABFA5F65C --json`,
    )
    .action(async (ref: string, opts: { key?: string[]; json?: boolean }, cmd: Command) => {
      const store = storeFor(cmd);
      const digest = await resolveRef(store, ref);
      const home = keyringDir(store.root);
      const fprs = opts.key ?? (await listKeys(home)).map((k) => k.fingerprint);
      const check = await checkProvenance(store, digest, home, fprs);
      if (!check.statement) throw new KilnError("KILN_E_NOT_FOUND", `${ref} has no provenance statement in the store`, { hint: "images baked by this kiln get one at bake time; pull the image with its referrers" });
      if (opts.json) return printJson({ digest, ...check });
      const p = check.statement.predicate as { buildDefinition?: { externalParameters?: Record<string, unknown>; resolvedDependencies?: { name?: string; uri?: string; digest?: Record<string, string> }[] }; runDetails?: { builder?: { id?: string; version?: Record<string, string> } } };
      out(`${ref} ${digest}`);
      out(`  builder   ${p.runDetails?.builder?.id ?? "?"} ${Object.values(p.runDetails?.builder?.version ?? {}).join(" ")}`);
      const ky = (p.buildDefinition?.externalParameters?.kiln_yaml as { digest?: { sha256?: string } } | undefined)?.digest?.sha256;
      if (ky) out(`  kiln.yaml sha256:${ky}`);
      for (const d of p.buildDefinition?.resolvedDependencies ?? []) out(`  ${(d.name ?? "").padEnd(9)} ${d.uri ?? ""} ${Object.entries(d.digest ?? {}).map(([a, h]) => `${a}:${h.slice(0, 16)}…`).join(" ")}`);
      if (check.verifiedBy.length > 0) out(`  signed    by ${[...new Set(check.verifiedBy)].join(", ")}`);
      else out(`  signed    NO signature by ${fprs.length === 0 ? "any key (kiln's keyring is empty)" : fprs.join(", ")}${check.rejected.length > 0 ? ` (${check.rejected.map((r) => r.reason).join("; ")})` : ""}`);
      if (check.verifiedBy.length === 0) process.exitCode = 1;
    });

  const keys = program.command("keys").description("kiln's signing keys: a GnuPG keyring of its own under $KILN_HOME/gnupg (KILN_GNUPGHOME overrides)");
  keys
    .command("generate")
    .description("create an ed25519 signing key (no passphrase: kiln signs unattended; keep $KILN_HOME private)")
    .option("--name <text>", "the key's name", "kiln")
    .option("--email <address>", "the key's e-mail", `kiln@${hostname()}`)
    .option("--json", "print the key as JSON")
    .addHelpText("after", "\nExample:\n  kiln keys generate --name 'acme release' --email release@acme.example")
    .action(async (opts: { name: string; email: string; json?: boolean }, cmd: Command) => {
      const home = keyringDir(storeFor(cmd).root);
      const k = await generateKey(home, `${opts.name} <${opts.email}>`);
      if (opts.json) return printJson(k);
      out(`${k.fingerprint} ${k.uid}`);
      out(`  keyring ${home}`);
    });
  keys
    .command("list")
    .description("the keys in kiln's keyring (secret: kiln can sign with it)")
    .option("--json", "print the keys as JSON")
    .addHelpText("after", "\nExample:\n  kiln keys list")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ks = await listKeys(keyringDir(storeFor(cmd).root));
      if (opts.json) return printJson(ks);
      if (ks.length === 0) out("no keys (kiln keys generate, or kiln keys import FILE)");
      for (const k of ks) out(`${k.fingerprint} ${k.secret ? "sign  " : "verify"} ${k.algorithm} ${k.created} ${k.uid}`);
    });
  keys
    .command("export [key]")
    .description("print a public key (binary OpenPGP, or --armor), for verifiers: skopeo's policy.json keyPath")
    .option("--armor", "ASCII-armored")
    .option("--out <file>", "write to a file instead of standard output")
    .addHelpText("after", "\nExample:\n  kiln keys export --out kiln.gpg")
    .action(async (key: string | undefined, opts: { armor?: boolean; out?: string }, cmd: Command) => {
      const home = keyringDir(storeFor(cmd).root);
      const k = await findKey(home, key, key === undefined);
      const bytes = await exportKeys(home, [k.fingerprint], opts.armor === true);
      if (opts.out) await writeFile(resolve(opts.out), bytes);
      else process.stdout.write(bytes);
    });
  keys
    .command("import <file>")
    .description("add public keys to kiln's keyring (the keys a deploy policy trusts)")
    .option("--json", "print the fingerprints as JSON")
    .addHelpText("after", "\nExample:\n  kiln keys import release-team.gpg")
    .action(async (file: string, opts: { json?: boolean }, cmd: Command) => {
      const bytes = await readFile(resolve(file)).catch((e: unknown) => {
        throw new KilnError("KILN_E_USAGE", `cannot read ${file}`, { cause: e, hint: "give the path of an exported OpenPGP public key" });
      });
      const fprs = await importKeys(keyringDir(storeFor(cmd).root), bytes);
      if (opts.json) return printJson({ imported: fprs });
      for (const f of fprs) out(`imported ${f}`);
    });
  keys
    .command("policy")
    .description("write a skopeo/podman verifier configuration for a registry: the public key, policy.json (signedBy it) and registries.d (the lookaside)")
    .requiredOption("--registry <host:port>", "the registry the policy covers (e.g. 127.0.0.1:5000)")
    .requiredOption("--out <dir>", "where to write kiln.gpg, policy.json and registries.d/kiln.yaml")
    .option("--key <fingerprint>", "the trusted key (default: the keyring's only secret key)")
    .addHelpText(
      "after",
      `
Then: skopeo --policy DIR/policy.json --registries.d DIR/registries.d copy docker://REGISTRY/REPO:TAG dir:/tmp/x
accepts an image kiln signed for REGISTRY/REPO:TAG and refuses an unsigned one or one signed by another key.

Example:
  kiln keys policy --registry 127.0.0.1:5000 --out /etc/kiln/verify`,
    )
    .action(async (opts: { registry: string; out: string; key?: string }, cmd: Command) => {
      const store = storeFor(cmd);
      const home = keyringDir(store.root);
      const k = await findKey(home, opts.key, opts.key === undefined);
      const dir = resolve(opts.out);
      await mkdir(join(dir, "registries.d"), { recursive: true });
      const keyPath = join(dir, "kiln.gpg");
      await writeFile(keyPath, await exportKeys(home, [k.fingerprint], false));
      const cfg = verifierConfig(opts.registry, keyPath, lookasideUrl(lookasideRoot(store.root), opts.registry));
      await writeFile(join(dir, "policy.json"), `${JSON.stringify(cfg.policy, null, 2)}\n`);
      await writeFile(join(dir, "registries.d", "kiln.yaml"), cfg.registriesD);
      out(`${dir}/policy.json: ${opts.registry} requires a signature by ${k.fingerprint}; everything else is rejected`);
      out(`${dir}/registries.d/kiln.yaml: signatures at ${lookasideUrl(lookasideRoot(store.root), opts.registry)}`);
    });
}
