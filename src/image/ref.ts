// Image names and tags. Names follow Docker's repository grammar and versions
// Docker's tag grammar, so every kiln tag survives export to docker-archive.

import { KilnError } from "../errors.js";

const NAME_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const VERSION_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function isValidName(name: string): boolean {
  return name.length <= 255 && NAME_RE.test(name);
}

export function isValidVersion(version: string): boolean {
  return VERSION_RE.test(version);
}

export function checkRefParts(name: string, version: string): void {
  if (!isValidName(name)) {
    throw new KilnError("KILN_E_IMAGE", `invalid image name ${JSON.stringify(name)}`, {
      hint: 'use lowercase letters, digits and single ".", "_" or "-" separators, e.g. "shop-api"',
    });
  }
  if (!isValidVersion(version)) {
    throw new KilnError("KILN_E_IMAGE", `invalid image version ${JSON.stringify(version)}`, {
      hint: 'use letters, digits, ".", "_" and "-" (up to 128 characters), e.g. "1.4.2"',
    });
  }
}

export function formatRef(name: string, version: string): string {
  return `${name}:${version}`;
}

/** Split "name:version" at the last colon (names never contain one). */
export function splitRef(ref: string): { name: string; version: string } | undefined {
  const i = ref.lastIndexOf(":");
  if (i <= 0 || i === ref.length - 1) return undefined;
  return { name: ref.slice(0, i), version: ref.slice(i + 1) };
}
