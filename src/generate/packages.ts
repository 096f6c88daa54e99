// The Debian packages a service needs on a VM image, pinned. kiln.yaml records
// them in one image label (so they travel with the spec, and into the image's
// own labels as a record of what its VM twin installs); `kiln init --packages`
// writes it and the Packer emitter reads it.

import { KilnError } from "../errors.js";
import { LABEL } from "../derive/index.js";

export const PACKAGES_LABEL = LABEL.packages;

export interface PinnedPackage {
  name: string;
  version: string;
}

// Debian policy: names are [a-z0-9][a-z0-9+.-]+ (an arch qualifier may follow);
// versions [epoch:]upstream[-revision] from [A-Za-z0-9.+~:-]. Both end up in a
// shell command, so anything else is refused rather than quoted.
const NAME = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/;
const VERSION = /^[0-9][A-Za-z0-9.+~:-]*$/;

export function isPackageName(s: string): boolean {
  return NAME.test(s);
}

export function isPackageVersion(s: string): boolean {
  return VERSION.test(s);
}

/** "curl=7.88.1-10+deb12u8 ca-certificates=20230311" → [{ca-certificates…}, {curl…}] (sorted by name). */
export function parsePackagesLabel(value: string | undefined): PinnedPackage[] {
  if (value === undefined || value.trim() === "") return [];
  const out: PinnedPackage[] = [];
  for (const item of value.trim().split(/\s+/)) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    const version = eq < 0 ? "" : item.slice(eq + 1);
    if (!isPackageName(name) || !isPackageVersion(version)) {
      throw new KilnError("KILN_E_SPEC", `image.labels["${PACKAGES_LABEL}"]: ${JSON.stringify(item)} is not a pinned Debian package`, {
        hint: 'write "NAME=VERSION" pairs separated by spaces, e.g. "curl=7.88.1-10+deb12u8"; `kiln init --packages FILE` resolves versions for you',
      });
    }
    out.push({ name, version });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function formatPackagesLabel(packages: readonly PinnedPackage[]): string {
  return [...packages]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((p) => `${p.name}=${p.version}`)
    .join(" ");
}
