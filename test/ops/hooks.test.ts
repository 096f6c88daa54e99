// The pure parts of hooks: the environment a hook sees and how it is started (worked examples).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeEnd, hookArgv, hookEnv } from "../../src/ops/hooks.js";

describe("hookEnv", () => {
  it("pre-deploy of hello 2.0.0 over a live release: every KILN_* variable, empty when unknown", () => {
    const env = hookEnv("pre-deploy", { service: "hello", version: "2.0.0", ref: "hello:2.0.0", digest: "sha256:b", previousDigest: "sha256:a", strategy: "rolling", actor: "dev@laptop", command: "kiln deploy" });
    assert.deepEqual(env, {
      KILN_HOOK: "pre-deploy", KILN_SERVICE: "hello", KILN_ENV: "", KILN_VERSION: "2.0.0", KILN_REF: "hello:2.0.0", KILN_DIGEST: "sha256:b",
      KILN_PREVIOUS_DIGEST: "sha256:a", KILN_STRATEGY: "rolling", KILN_ACTOR: "dev@laptop", KILN_REASON: "", KILN_COMMAND: "kiln deploy",
      KILN_RELEASE: "", KILN_OUTCOME: "", KILN_ROLLBACK: "", KILN_FROM_ENV: "",
    });
  });
  it("first deploy: KILN_PREVIOUS_DIGEST is empty; an environment and a promotion source are passed", () => {
    const env = hookEnv("pre-promotion", { service: "hello", env: "production", fromEnv: "staging", digest: "sha256:b", actor: "ci" });
    assert.equal(env.KILN_PREVIOUS_DIGEST, "");
    assert.equal(env.KILN_ENV, "production");
    assert.equal(env.KILN_FROM_ENV, "staging");
  });
});

describe("hookArgv", () => {
  it("a list runs as is; a string is the user's shell line", () => {
    assert.deepEqual(hookArgv(["./hooks/check", "--fast"]), ["./hooks/check", "--fast"]);
    assert.deepEqual(hookArgv("npm run migrate && echo done"), ["/bin/sh", "-c", "npm run migrate && echo done"]);
  });
});

describe("describeEnd", () => {
  it("names how a hook ended", () => {
    assert.equal(describeEnd({ exitCode: 3, timedOut: false }, 1000), "exit 3");
    assert.equal(describeEnd({ timedOut: true, signal: "SIGTERM" }, 1500), "timed out after 1.5 s");
    assert.equal(describeEnd({ signal: "SIGKILL", timedOut: false }, 1000), "killed by SIGKILL");
    assert.equal(describeEnd({ startError: "./x: ENOENT", timedOut: false }, 1000), "could not start: ./x: ENOENT");
  });
});
