// Registry credentials as push and pull take them: flags, else the environment, else none.

import { KilnError } from "../errors.js";
import type { Credentials } from "../image/registry/index.js";

export interface RegistryCredentialOptions {
  username?: string;
  passwordStdin?: boolean;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new KilnError("KILN_E_USAGE", "--password-stdin reads the password from standard input, which is a terminal", {
      hint: "pipe it in: `printf %s \"$PASSWORD\" | kiln push … --username NAME --password-stdin`",
    });
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** --username with --password-stdin, else KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD, else anonymous. */
export async function credentialsFrom(opts: RegistryCredentialOptions, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  if (opts.passwordStdin) {
    const username = opts.username ?? env.KILN_REGISTRY_USERNAME;
    if (!username) throw new KilnError("KILN_E_USAGE", "--password-stdin needs a username", { hint: "add --username NAME (or set KILN_REGISTRY_USERNAME)" });
    return { username, password: await readStdin() };
  }
  if (opts.username !== undefined) {
    if (env.KILN_REGISTRY_PASSWORD === undefined) {
      throw new KilnError("KILN_E_USAGE", "--username needs a password", { hint: "pipe it with --password-stdin, or set KILN_REGISTRY_PASSWORD" });
    }
    return { username: opts.username, password: env.KILN_REGISTRY_PASSWORD };
  }
  if (env.KILN_REGISTRY_USERNAME !== undefined || env.KILN_REGISTRY_PASSWORD !== undefined) {
    if (!env.KILN_REGISTRY_USERNAME || env.KILN_REGISTRY_PASSWORD === undefined) {
      throw new KilnError("KILN_E_USAGE", "set both KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD, or neither", { hint: "or pass --username with --password-stdin" });
    }
    return { username: env.KILN_REGISTRY_USERNAME, password: env.KILN_REGISTRY_PASSWORD };
  }
  return undefined;
}
