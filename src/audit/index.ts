// Public API of the audit module (`kiln audit`).

export { auditImage, assertProvider, AUDIT_PROVIDERS, AUDIT_SCHEMA } from "./audit.js";
export type { AuditOptions, AuditProvider, AuditReport } from "./audit.js";
export { classify, verdictOf, WRITE_HINT } from "./classify.js";
export { parseSmoke, describeRequest } from "./exercise.js";
export { formatAuditText, FINDING_DOCS } from "./format.js";
export type { Finding, FindingKind, Severity, Verdict, SecretKind, PathChange, RunRecord, SmokeRequest } from "./types.js";
