// Registry references: "REGISTRY/REPO[:TAG][@sha256:…]", Docker's grammar with
// one difference: the registry is never implied (no silent docker.io), so a
// reference always says which machine the bytes come from or go to.
//
//   127.0.0.1:5000/hello:1.0.0        registry 127.0.0.1:5000, repository hello, tag 1.0.0
//   ghcr.io/acme/shop/api@sha256:…    registry ghcr.io, repository acme/shop/api, by digest
//   [::1]:5000/hello                  IPv6 literal; no tag and no digest (push: the image's version)
//   hello:1.0.0, team/app:2           not registry references: kiln store refs

import { KilnError } from "../../errors.js";
import { isDigest } from "../digest.js";

export interface RegistryRef {
  /** "host[:port]" exactly as written ("127.0.0.1:5000", "ghcr.io", "[::1]:5000") */
  registry: string;
  /** "hello", "acme/shop/api" */
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$/;

/**
 * Docker's rule for "does this name start with a registry": the first path
 * component holds a "." or a ":" (a domain or a port), is "localhost", or is an
 * IPv6 literal. Store refs ("hello:1.0.0", "team/app:2") never do.
 */
export function isRegistryRef(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash <= 0) return false;
  const first = s.slice(0, slash);
  return first === "localhost" || first.includes(".") || first.includes(":") || first.startsWith("[");
}

const usage = (s: string, why: string, hint?: string) =>
  new KilnError("KILN_E_USAGE", `not a registry reference ${JSON.stringify(s)}: ${why}`, {
    hint: hint ?? 'write REGISTRY/REPO[:TAG] or REGISTRY/REPO@sha256:…, e.g. "127.0.0.1:5000/hello:1.0.0"',
  });

export function parseRegistryRef(s: string): RegistryRef {
  if (!isRegistryRef(s)) {
    throw usage(s, "it does not start with a registry host", `name the registry explicitly, e.g. "127.0.0.1:5000/${s.replace(/^\/+/, "")}" or "ghcr.io/OWNER/${s.replace(/^\/+/, "")}"`);
  }
  const slash = s.indexOf("/");
  const registry = s.slice(0, slash);
  if (!HOST_RE.test(registry)) throw usage(s, `bad registry host ${JSON.stringify(registry)}`);
  let rest = s.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw usage(s, `bad digest ${JSON.stringify(digest)}`, 'digests look like "sha256:" followed by 64 lowercase hex characters');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw usage(s, `bad tag ${JSON.stringify(tag)}`, 'tags are letters, digits, "_", "." and "-" (up to 128), e.g. "1.0.0"');
  }
  if (!REPOSITORY_RE.test(rest) || rest.length > 255) {
    throw usage(s, `bad repository ${JSON.stringify(rest)}`, 'repositories are lowercase path components like "hello" or "acme/shop-api"');
  }
  const out: RegistryRef = { registry, repository: rest };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** "REGISTRY/REPO", then "@digest" if given, else ":tag" if given. */
export function formatRegistryRef(r: RegistryRef): string {
  const base = `${r.registry}/${r.repository}`;
  if (r.digest) return `${base}@${r.digest}`;
  return r.tag ? `${base}:${r.tag}` : base;
}

function hostOf(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(0, registry.indexOf("]") + 1);
  const colon = registry.lastIndexOf(":");
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** Loopback hosts may be spoken to in plain HTTP; nothing else without --insecure. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOf(registry).toLowerCase();
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** "http://127.0.0.1:5000" for loopback or --insecure, "https://ghcr.io" otherwise. */
export function registryBaseUrl(registry: string, insecure = false): string {
  return `${insecure || isLoopbackRegistry(registry) ? "http" : "https"}://${registry}`;
}
