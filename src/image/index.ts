// Public API of the image module. Everything else in src/image is internal.

export { openStore } from "./store.js";
export type { Store, BlobWriter, TaggedManifest } from "./store.js";
export { bake, pickCreatedEpoch, resolveCreatedEpoch } from "./bake.js";
export { bakeThreads } from "./parallel-gzip.js";
export type { BakeOptions, CreatedFacts, CreatedSource } from "./bake.js";
export { listImages, resolveRef, readImage } from "./images.js";
export { exportImage } from "./export.js";
export type { ExportFormat, ExportOptions, ExportResult } from "./export.js";
export { unpackRootfs } from "./unpack.js";
export { readImageFile, IMAGE_FILE_MAX_BYTES } from "./rootfs-file.js";
export { parseBaseSource } from "./base.js";
export { readImageSbom } from "./sbom-write.js";
export { nodeSupport, NODE_PINS, NODE_LINES } from "./node-releases.js";
export type { RuntimeSupport } from "./node-releases.js";
export { referrerUploads, recordReferrer, referrersTag, referrersTagIndex, listReferrers, storePulledReferrer } from "./referrers.js";
export type { ReferrerDescriptor, ReferrerUpload } from "./referrers.js";
export type { BaseSource } from "./base.js";
export { isDigest } from "./digest.js";
export { ANNOTATION, MEDIA_TYPE } from "./types.js";
export type {
  BakeRecipe,
  BakeResult,
  FileEntry,
  ImageSummary,
  LayerCompression,
  LayerRole,
  LayerSummary,
  ProgressEvent,
  ProgressFn,
  Descriptor,
  OciImageConfig,
  OciIndex,
  OciManifest,
} from "./types.js";
export { kilnVersion } from "./sbom-write.js";
export { checkSignatures, exportSignaturesToLookaside, imageSignatures, lookasideRoot, lookasideUrl, signImage, writeLookaside } from "./sign.js";
export type { SignatureCheck, SignRequest, SignResult, StoredSignature } from "./sign.js";
export { exportKeys, findKey, generateKey, importKeys, keyringDir, listKeys, verifySigned } from "./gpg.js";
export type { KeyInfo, VerifyResult } from "./gpg.js";
export { identityRepository, parseSigningPayload, SIGNATURE_ARTIFACT_TYPE, signingPayload, verifierConfig } from "./simple-signing.js";
export { assertPolicy, evaluatePolicy, gatherPolicyFacts, policyIsEmpty } from "./policy.js";
export type { PolicyFacts, PolicyRule, PolicyVerdict, RuleResult } from "./policy.js";
export { checkProvenance, dssePae, provenanceStatement, readProvenance, signProvenance, DSSE_ARTIFACT_TYPE, PROVENANCE_ARTIFACT_TYPE } from "./provenance.js";
export type { DsseEnvelope, ProvenanceCheck, ProvenanceInput } from "./provenance.js";
export { compareTrees, unpackedDigests, verifyRootfs } from "./drift.js";
export type { DriftFinding, RootfsDrift, TreeNode } from "./drift.js";
export { resolveBase } from "./base.js";
export { baseInventory } from "./base-inventory.js";
export type { DebPackage } from "./dpkg.js";
export { parseOsRelease } from "./sbom.js";
export { compareDebianVersions, compareSemver, nextPatchVersion } from "./versions.js";
export { aptCachePolicyArgv, availableVersion, parsePackageIndex } from "./package-index.js";
export type { PackageIndex } from "./package-index.js";
export { jsonOrUndefined, npmAdvisoriesFor, parseOsv } from "./osv.js";
export type { NpmAdvisory, OsvVuln } from "./osv.js";
export { auditLockfile, npmAuditArgv, parseNpmAudit } from "./npm-audit.js";
export type { LockedPackage } from "./npm-audit.js";
