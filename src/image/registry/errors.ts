// Registry answers and transport failures → KilnErrors that say what to do.
// Classified by HTTP status and the distribution spec's error codes (the JSON
// body `{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`), never by message text.

import { KilnError } from "../../errors.js";
import { readBody } from "./body.js";

const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface RequestContext {
  /** "127.0.0.1:5000" */
  registry: string;
  repository: string;
  /** what was asked for, for people: "manifest 1.0.0", "blob sha256:…", "upload of sha256:…" */
  what: string;
  hasCredentials: boolean;
  /** "pull" or "push" */
  action: "pull" | "push";
}

export interface RegistryErrorBody {
  code: string;
  message?: string;
}

/** The distribution error codes in a response body (empty if it has none). */
export async function readErrorCodes(res: Response): Promise<RegistryErrorBody[]> {
  try {
    // An error body is a few hundred bytes; a registry sending megabytes is not owed a full read.
    const text = (await readBody(res, MAX_ERROR_BODY_BYTES, "an error body")).toString("utf8");
    const json = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    return (json.errors ?? []).filter((e) => typeof e.code === "string").map((e) => ({ code: String(e.code), message: typeof e.message === "string" ? e.message : undefined }));
  } catch {
    return [];
  }
}

export const CREDENTIALS_HINT = "pass --username and --password-stdin, or set KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD";

export function credentialsError(ctx: Pick<RequestContext, "registry" | "repository" | "hasCredentials" | "action">, status: number, detail?: string): KilnError {
  const where = `${ctx.registry}/${ctx.repository}`;
  if (status === 403) {
    return new KilnError("KILN_E_REGISTRY", `${ctx.registry} denied ${ctx.action} access to ${ctx.repository} (403${detail ? ` ${detail}` : ""})`, {
      hint: ctx.hasCredentials ? `the account is valid but may not ${ctx.action} ${where}: ask the registry's owner for ${ctx.action} permission` : CREDENTIALS_HINT,
      details: [{ where, message: "access denied" }],
    });
  }
  return new KilnError("KILN_E_REGISTRY", `${ctx.registry} refused ${ctx.hasCredentials ? "the credentials" : "anonymous access"} for ${ctx.action} of ${ctx.repository} (401${detail ? ` ${detail}` : ""})`, {
    hint: ctx.hasCredentials ? "check the username and password (KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD, or --username with --password-stdin)" : CREDENTIALS_HINT,
    details: [{ where, message: "authentication failed" }],
  });
}

export async function responseError(res: Response, ctx: RequestContext): Promise<KilnError> {
  const errors = await readErrorCodes(res);
  const codes = errors.map((e) => e.code);
  const first = errors[0];
  const detail = first ? `${first.code}${first.message ? `: ${first.message}` : ""}` : "";
  const where = `${ctx.registry}/${ctx.repository}`;
  const s = res.status;
  if (s === 401 || s === 403) return credentialsError(ctx, s, first?.code);
  if (s === 404) {
    if (codes.includes("NAME_UNKNOWN")) {
      return new KilnError("KILN_E_NOT_FOUND", `${ctx.registry} has no repository ${ctx.repository}`, {
        hint: `check the repository name; push an image there first with \`kiln push REF ${where}:TAG\``,
        details: [{ where, message: "NAME_UNKNOWN" }],
      });
    }
    if (codes.includes("MANIFEST_UNKNOWN") || ctx.what.startsWith("manifest")) {
      return new KilnError("KILN_E_NOT_FOUND", `${where} has no ${ctx.what}`, {
        hint: `check the tag or digest (list tags: \`skopeo list-tags docker://${where}\`)`,
        details: [{ where, message: codes[0] ?? "404" }],
      });
    }
    return new KilnError("KILN_E_NOT_FOUND", `${where} has no ${ctx.what}`, {
      hint: "the registry lost a blob its manifest names, or it was garbage-collected: push the image again",
      details: [{ where, message: codes[0] ?? "404" }],
    });
  }
  if (s === 415 || (s === 400 && codes.some((c) => c === "MANIFEST_INVALID" || c === "UNSUPPORTED" || c === "MANIFEST_BLOB_UNKNOWN"))) {
    const blobUnknown = codes.includes("MANIFEST_BLOB_UNKNOWN");
    return new KilnError("KILN_E_REGISTRY", `${ctx.registry} rejected the ${ctx.what} (${s}${detail ? ` ${detail}` : ""})`, {
      hint: blobUnknown
        ? "the registry does not hold every blob the manifest names: push again (kiln re-checks each blob)"
        : "the registry does not accept this manifest's media type (kiln pushes OCI image manifests); use a registry that supports the OCI image spec, e.g. distribution ≥ 2.7",
      details: [{ where, message: codes.join(", ") || String(s) }],
    });
  }
  if (s === 400 && codes.some((c) => c === "DIGEST_INVALID" || c === "SIZE_INVALID" || c === "BLOB_UPLOAD_INVALID")) {
    return new KilnError("KILN_E_UNSAFE", `${ctx.registry} says the ${ctx.what} does not match its digest or size (${detail})`, {
      hint: "the bytes changed in transit or in the store: run the push again; if it repeats, re-bake the image",
      details: [{ where, message: codes.join(", ") }],
    });
  }
  if (s === 429) {
    return new KilnError("KILN_E_REGISTRY", `${ctx.registry} is rate-limiting requests (429 ${detail})`.trim(), {
      hint: "wait a minute and run the command again, or log in: authenticated clients usually get a higher limit",
    });
  }
  return new KilnError("KILN_E_REGISTRY", `${ctx.registry} answered ${s} ${res.statusText} for the ${ctx.what}${detail ? ` (${detail})` : ""}`, {
    hint: s >= 500 ? "the registry failed: check its logs and retry" : "the registry refused the request; check the reference",
    details: [{ where, message: codes.join(", ") || String(s) }],
  });
}

/** What a network error code means for reaching a registry, in the words the user reads. */
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "its host name does not resolve",
  EAI_AGAIN: "name resolution failed (no DNS answer)",
  EHOSTUNREACH: "no route to the host",
  ENETUNREACH: "the network is unreachable",
  ECONNRESET: "the connection was reset",
  ETIMEDOUT: "the connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
  UND_ERR_SOCKET: "the connection closed unexpectedly",
};

/**
 * fetch() threw: a connection problem (refused, DNS, TLS, reset). A registry that cannot be
 * reached is said to be unreachable with the network error, never guessed to be a typo: an
 * offline machine or a stopped registry fails the same way as a misspelt host. Examples:
 * - ECONNREFUSED on 127.0.0.1:5001 → "the registry 127.0.0.1:5001 is unreachable: cannot connect to 127.0.0.1:5001: connection refused (ECONNREFUSED, http://127.0.0.1:5001/v2/)", hint: is it running and listening there
 * - ENOTFOUND for reg.example:5000 → "… is unreachable: its host name does not resolve (ENOTFOUND, …)", hint: the network and DNS first, then the host name
 * - EAI_AGAIN → "… is unreachable: name resolution failed (no DNS answer) (EAI_AGAIN, …)", same hint
 * - EHOSTUNREACH / ENETUNREACH / ECONNRESET / a connect timeout → "… is unreachable: no route to the host (…)" and the like, hint: the network path
 * - a TLS error over https → "TLS to … failed", hint: the CA or --insecure
 */
export function transportError(e: unknown, url: string, registry: string): KilnError {
  // A stream body that failed (e.g. a corrupt store blob) carries a KilnError: that one is the news.
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    if (c instanceof KilnError) return c;
  }
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (e as { code?: string }).code ?? "";
  const https = url.startsWith("https:");
  const what = UNREACHABLE[code];
  if (what !== undefined) {
    const hint =
      code === "ECONNREFUSED"
        ? `check that the registry is running and listening on ${registry} (host and port), then retry`
        : code === "ENOTFOUND" || code === "EAI_AGAIN"
          ? `check this machine's network and DNS (does any host resolve?), then the registry host name in ${registry}`
          : `check the network path to ${registry} (routes, firewall, proxy) and that the registry is up, then retry`;
    const detail = code === "ECONNREFUSED" ? `cannot connect to ${registry}: ${what}` : what;
    return new KilnError("KILN_E_REGISTRY", `the registry ${registry} is unreachable: ${detail} (${code}, ${url})`, { hint, cause: e });
  }
  if (https && (/CERT|SSL|TLS/i.test(code) || code === "EPROTO")) {
    return new KilnError("KILN_E_REGISTRY", `TLS to ${registry} failed (${code})`, {
      hint: "the registry's certificate is not trusted (add its CA via NODE_EXTRA_CA_CERTS), or it speaks plain HTTP: then pass --insecure",
      cause: e,
    });
  }
  if ((e as Error).name === "TimeoutError" || code === "UND_ERR_HEADERS_TIMEOUT") {
    return new KilnError("KILN_E_REGISTRY", `${registry} did not answer in time (${url})`, { hint: "check the registry and the network, then retry", cause: e });
  }
  return new KilnError("KILN_E_REGISTRY", `request to ${url} failed: ${cause?.message ?? (e as Error).message}${code ? ` (${code})` : ""}`, {
    hint: https ? "check the registry address; a plain-HTTP registry needs --insecure" : "check the registry address and that it is running",
    cause: e,
  });
}
