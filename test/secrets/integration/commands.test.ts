// fromCommand runs real processes: its value, its refusals (exit code, timeout, missing binary,
// oversized output), and that no refusal shows what the command printed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isKilnError } from "../../../src/errors.js";
import { resolveSecret } from "../../../src/secrets/index.js";

const opts = { env: { PATH: "/usr/bin:/bin" }, stderr: "ignore" as const };
const cmd = (argv: string[], timeoutMs = 5000) => ({ fromCommand: argv, cwd: "/", timeoutMs });

test("a command's stdout is the value, one trailing newline removed, run without a shell", async () => {
  assert.equal(await resolveSecret("A", cmd(["/bin/echo", "v1"]), opts), "v1");
  assert.equal(await resolveSecret("A", cmd(["/bin/echo", "$HOME;x"]), opts), "$HOME;x");
});

test("refusals name the secret and the command, never the output", async () => {
  const refused = async (argv: string[], words: RegExp, timeoutMs?: number) =>
    assert.rejects(resolveSecret("TOKEN", cmd(argv, timeoutMs), opts), (e: unknown) => isKilnError(e) && e.code === "KILN_E_SPEC" && words.test(e.message) && !e.message.includes("leaked-value"));
  await refused(["/bin/sh", "-c", "echo leaked-value; exit 3"], /secret TOKEN: command \/bin\/sh exited 3/);
  await refused(["/bin/sleep", "5"], /did not finish within 200 ms/, 200);
  await refused(["/nonexistent/vault"], /could not be started \(ENOENT\)/);
  await refused(["/bin/sh", "-c", "head -c 70000 /dev/zero | tr '\\0' x; echo leaked-value"], /printed more than 65536 bytes/);
});
