import type { Command } from "commander";
import { homeFor } from "../../home.js";
import { nodeSupport, openStore, readImageSbom, resolveRef } from "../../image/index.js";
import { out, specFile, type GlobalOptions } from "../context.js";

interface Comp {
  type?: string;
  name?: string;
  group?: string;
  version?: string;
  purl?: string;
}

export function register(program: Command): void {
  program
    .command("sbom <ref>")
    .description("print the software bill of materials (CycloneDX 1.6) kiln attached to an image when it baked it")
    .option("--json", "print the CycloneDX JSON document itself, byte for byte as stored")
    .addHelpText(
      "after",
      `
REF is NAME:VERSION, a digest or a unique digest prefix. The SBOM lists the runtime
(name, version, where it came from, hashes), the base image and its Debian packages,
the npm packages of the dependencies layer's lockfile and every app and config file
with its sha256. It is stored next to the image as an OCI artifact whose subject is
the image manifest, and is the same bytes for the same image.

Examples:
  kiln sbom hello:1.0.0
  kiln sbom hello:1.0.0 --json > hello.cdx.json`,
    )
    .action(async (ref: string, opts: { json?: boolean }, cmd: Command) => {
      const home = process.env.KILN_HOME ? homeFor("") : homeFor(specFile(cmd.optsWithGlobals<GlobalOptions>()));
      const store = openStore(home);
      const digest = await resolveRef(store, ref);
      const sbom = await readImageSbom(store, digest);
      if (opts.json) {
        process.stdout.write(sbom.text);
        return;
      }
      const s = sbom.summary;
      const doc = JSON.parse(sbom.text) as { specVersion?: string; components?: Comp[] };
      const comps = doc.components ?? [];
      out(`${s.image.name}:${s.image.version} ${digest}`);
      out(`  sbom      ${sbom.artifact} (CycloneDX ${doc.specVersion ?? "?"}; --json prints it)`);
      if (s.runtime) {
        const support = nodeSupport(s.runtime.version, new Date().toISOString().slice(0, 10));
        const note = support.status === "end-of-life" ? ` — END OF LIFE since ${support.endOfLife}` : support.status === "ending-soon" ? ` — end of life on ${support.endOfLife}` : support.endOfLife ? ` (supported until ${support.endOfLife})` : "";
        out(`  runtime   ${s.runtime.name} ${s.runtime.version}${s.runtime.source ? ` from ${s.runtime.source}` : ""}${note}`);
      }
      if (s.base) out(`  base      ${s.base.name} ${s.base.digest ?? ""}`);
      if (s.os) out(`  os        ${s.os}`);
      out(`  ${s.counts.components} components: ${s.counts.debian} Debian packages, ${s.counts.npm} npm packages, ${s.counts.files} files`);
      const debs = comps.filter((c) => c.purl?.startsWith("pkg:deb/"));
      if (debs.length > 0) out(`  debian    ${debs.map((c) => `${c.name} ${c.version}`).join(", ")}`);
      const npm = comps.filter((c) => c.type === "library" && c.purl?.startsWith("pkg:npm/"));
      if (npm.length > 0) out(`  npm       ${npm.map((c) => `${c.group ? `${c.group}/` : ""}${c.name}@${c.version}`).join(", ")}`);
    });
}
