// TLS termination: certificates and keys from files, one chosen per
// connection by SNI. The names a certificate serves are read from the
// certificate itself (subjectAltName DNS entries, else its CN), so the
// configuration is only a list of files.

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { KilnError } from "../../errors.js";

export interface CertificateFiles {
  /** PEM certificate (chain) file */
  cert: string;
  /** PEM private key file */
  key: string;
}

export interface LoadedCertificate {
  files: CertificateFiles;
  /** DNS names it serves, lowercased; "*.example.com" for a wildcard */
  names: string[];
  context: tls.SecureContext;
  /** PEM, for the server's default context */
  certPem: Buffer;
  keyPem: Buffer;
}

/**
 * Which certificate serves `servername` (SNI, any case): an exact name
 * first, then a wildcard covering exactly one leftmost label, else the first
 * certificate (the default; also for clients that send no SNI).
 *
 *   [a.test], [b.test, *.b.test]; "b.test"     → 1
 *   same; "x.b.test"                          → 1 (wildcard)
 *   same; "y.x.b.test"                        → 0 (a wildcard covers one label only: default)
 *   [*.c.test], [api.c.test]; "API.c.test"    → 1 (exact beats wildcard)
 *   same; undefined (no SNI)                  → 0
 */
export function pickCertificate(certs: ReadonlyArray<{ names: readonly string[] }>, servername: string | undefined): number {
  if (servername === undefined || servername === "") return 0;
  const name = servername.toLowerCase();
  const exact = certs.findIndex((c) => c.names.includes(name));
  if (exact >= 0) return exact;
  const dot = name.indexOf(".");
  if (dot > 0) {
    const wildcard = `*${name.slice(dot)}`;
    const w = certs.findIndex((c) => c.names.includes(wildcard));
    if (w >= 0) return w;
  }
  return 0;
}

/** The DNS names of a certificate: its subjectAltName DNS entries, else its CN. */
export function certificateNames(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (san) {
    const dns = san
      .split(/,\s*/)
      .filter((e) => e.startsWith("DNS:"))
      .map((e) => e.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Read and check every certificate/key pair; a problem names the file and what to do. */
export function loadCertificates(files: readonly CertificateFiles[]): LoadedCertificate[] {
  if (files.length === 0) {
    throw new KilnError("KILN_E_USAGE", "TLS needs at least one certificate", { hint: "pass --tls-cert CERT.pem:KEY.pem" });
  }
  return files.map((f) => {
    const read = (path: string, what: string): Buffer => {
      try {
        return readFileSync(path);
      } catch (e) {
        throw new KilnError("KILN_E_USAGE", `cannot read the TLS ${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
          hint: "check the path and that the proxy's user may read it",
          cause: e,
        });
      }
    };
    const certPem = read(f.cert, "certificate");
    const keyPem = read(f.key, "key");
    let x: X509Certificate;
    let context: tls.SecureContext;
    try {
      x = new X509Certificate(certPem);
    } catch (e) {
      throw new KilnError("KILN_E_USAGE", `${f.cert} is not a PEM certificate: ${(e as Error).message}`, { hint: "give the certificate file (-----BEGIN CERTIFICATE-----)", cause: e });
    }
    try {
      context = tls.createSecureContext({ cert: certPem, key: keyPem });
    } catch (e) {
      throw new KilnError("KILN_E_USAGE", `the key ${f.key} does not fit the certificate ${f.cert}: ${(e as Error).message}`, {
        hint: "give each certificate with its own private key (CERT.pem:KEY.pem)",
        cause: e,
      });
    }
    return { files: f, names: certificateNames(x), context, certPem, keyPem };
  });
}
