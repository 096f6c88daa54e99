// `kiln sign` and `kiln push --sign`: resolve what to sign (an image in a
// registry, or one in the store with the identity a verifier will pull it
// by), sign it with a key of kiln's keyring, keep the signature in the store
// and the lookaside, and — for a registry image — upload it as a referrer.

import { KilnError } from "../errors.js";
import { keyringDir, kilnVersion, lookasideRoot, resolveRef, signImage, signProvenance, type ReferrerDescriptor, type SignResult, type Store } from "../image/index.js";
import { fetchManifest, formatRegistryRef, isRegistryRef, parseRegistryRef, pushReferrers, RegistryClient, type Credentials, type ReferrersPushed } from "../image/registry/index.js";
import type { Descriptor } from "../image/index.js";

export interface SignReferenceOptions {
  /** "REGISTRY/REPO:TAG": required for a store ref, defaults to the reference itself for a registry ref */
  identity?: string;
  key?: string;
  credentials?: Credentials;
  insecure?: boolean;
  now?: Date;
  env?: NodeJS.ProcessEnv;
}

export interface SignReferenceResult extends SignResult {
  digest: string;
  /** the signed provenance envelope (DSSE), when the image has a statement */
  provenance?: ReferrerDescriptor;
  /** set when the signature went up to the registry */
  uploaded?: ReferrersPushed;
}

export async function signReference(store: Store, ref: string, opts: SignReferenceOptions = {}): Promise<SignReferenceResult> {
  const env = opts.env ?? process.env;
  let subject: Descriptor;
  let identity = opts.identity;
  let client: RegistryClient | undefined;
  if (isRegistryRef(ref)) {
    const r = parseRegistryRef(ref);
    if (r.tag === undefined && r.digest === undefined) throw new KilnError("KILN_E_USAGE", `sign ${ref}: name a tag or a digest`, { hint: `e.g. ${ref}:1.0.0` });
    client = new RegistryClient({ registry: r.registry, repository: r.repository, action: "push", credentials: opts.credentials, insecure: opts.insecure });
    // The bytes are hashed here: what is signed is what the registry serves now.
    const m = await fetchManifest(client, r.digest ?? r.tag!, r.digest);
    subject = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    identity ??= formatRegistryRef(r.digest && r.tag ? { ...r, digest: undefined } : r);
  } else {
    if (identity === undefined) {
      throw new KilnError("KILN_E_USAGE", `sign ${ref}: a signature vouches for the reference a verifier pulls`, {
        hint: `pass --identity REGISTRY/REPO:TAG (e.g. --identity 127.0.0.1:5000/${ref.split(":")[0]}:${ref.split(":")[1] ?? "1.0.0"}), or push first and sign the registry reference`,
      });
    }
    const digest = await resolveRef(store, ref);
    const bytes = await store.readBlob(digest);
    const mt = (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType ?? "application/vnd.oci.image.manifest.v1+json";
    subject = { mediaType: mt, digest, size: bytes.length };
  }
  if (!isRegistryRef(identity)) throw new KilnError("KILN_E_USAGE", `--identity ${JSON.stringify(identity)} is not REGISTRY/REPO:TAG`, { hint: "e.g. --identity 127.0.0.1:5000/notes:1.0.0" });
  const signed = await signImage(store, {
    subject,
    identity,
    keyring: keyringDir(store.root, env),
    key: opts.key,
    lookaside: lookasideRoot(store.root, env),
    creator: `kiln ${await kilnVersion()}`,
    now: opts.now ?? new Date(),
  });
  // The bake's provenance statement, signed the same way (a DSSE envelope), when the image has one.
  const provenance = await signProvenance(store, subject, keyringDir(store.root, env), signed.fingerprint);
  const result: SignReferenceResult = { ...signed, digest: subject.digest, ...(provenance ? { provenance } : {}) };
  if (client) result.uploaded = await pushReferrers(client, store, subject.digest, undefined, new Set([signed.artifact.digest, ...(provenance ? [provenance.digest] : [])]));
  return result;
}
