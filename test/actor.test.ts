// The actor of a change: the rows are the worked examples of actorFrom's and commandLine's doc comments.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { actorFrom, commandLine } from "../src/actor.js";

describe("actorFrom", () => {
  const rows: [env: Record<string, string>, user: string, host: string, actor: string][] = [
    [{ KILN_ACTOR: "release-bot" }, "dev", "laptop", "release-bot"],
    [{ GITHUB_ACTIONS: "true", GITHUB_ACTOR: "octocat", GITHUB_RUN_ID: "42" }, "runner", "h", "github:octocat (run 42)"],
    [{ GITLAB_CI: "true", GITLAB_USER_LOGIN: "alice", CI_JOB_ID: "7" }, "runner", "h", "gitlab:alice (job 7)"],
    [{ BUILDKITE: "true", BUILDKITE_BUILD_CREATOR_EMAIL: "b@x.io", BUILDKITE_JOB_ID: "j1" }, "agent", "h", "buildkite:b@x.io (job j1)"],
    [{ CIRCLECI: "true", CIRCLE_USERNAME: "carol", CIRCLE_BUILD_NUM: "9" }, "circleci", "h", "circleci:carol (build 9)"],
    [{}, "dev", "laptop", "dev@laptop"],
    [{ GITHUB_ACTIONS: "true" }, "runner", "h", "github:runner@h"],
    // KILN_ACTOR wins over a CI's identity; a blank one does not count
    [{ KILN_ACTOR: "ops", GITHUB_ACTIONS: "true", GITHUB_ACTOR: "octocat" }, "runner", "h", "ops"],
    [{ KILN_ACTOR: "  ", GITLAB_CI: "true", GITLAB_USER_LOGIN: "alice" }, "runner", "h", "gitlab:alice"],
  ];
  for (const [env, user, host, actor] of rows) it(`${JSON.stringify(env)} → ${actor}`, () => assert.equal(actorFrom(env, user, host), actor));
});

describe("commandLine", () => {
  it("quotes words with spaces; drops node and the script", () => {
    assert.equal(commandLine(["/usr/bin/node", "/x/dist/src/cli/main.js", "deploy", "--reason", "fix login"]), 'kiln deploy --reason "fix login"');
    assert.equal(commandLine(["node", "main.js"]), "kiln");
    assert.equal(commandLine(["node", "main.js", "deploy", "x".repeat(600)]).length, 500);
  });
});
