// Who is changing a fleet, for the audit trail, hooks and notifications. Imports nothing of
// kiln's: the CLI, the controller client and the hooks all name the actor the same way.

import { hostname, userInfo } from "node:os";

/**
 * The actor of a change: KILN_ACTOR when set, else the CI's identity from its documented
 * variables (the user who started the run and the run or job that acts), else user@host.
 *
 *   { KILN_ACTOR: "release-bot" }                                            → "release-bot"
 *   { GITHUB_ACTIONS: "true", GITHUB_ACTOR: "octocat", GITHUB_RUN_ID: "42" } → "github:octocat (run 42)"
 *   { GITLAB_CI: "true", GITLAB_USER_LOGIN: "alice", CI_JOB_ID: "7" }        → "gitlab:alice (job 7)"
 *   { BUILDKITE: "true", BUILDKITE_BUILD_CREATOR_EMAIL: "b@x.io", BUILDKITE_JOB_ID: "j1" } → "buildkite:b@x.io (job j1)"
 *   { CIRCLECI: "true", CIRCLE_USERNAME: "carol", CIRCLE_BUILD_NUM: "9" }    → "circleci:carol (build 9)"
 *   {} with user "dev", host "laptop"                                        → "dev@laptop"
 *   { GITHUB_ACTIONS: "true" } (no actor variable), user "runner", host "h"  → "github:runner@h"
 */
export function actorFrom(env: Readonly<Record<string, string | undefined>>, user: string, host: string): string {
  const set = (k: string) => (env[k] ?? "").trim() || undefined;
  const explicit = set("KILN_ACTOR");
  if (explicit) return explicit;
  const ci = (name: string, who: string | undefined, run: [string, string | undefined]) =>
    `${name}:${who ?? `${user}@${host}`}${run[1] ? ` (${run[0]} ${run[1]})` : ""}`;
  if (set("GITHUB_ACTIONS")) return ci("github", set("GITHUB_ACTOR"), ["run", set("GITHUB_RUN_ID")]);
  if (set("GITLAB_CI")) return ci("gitlab", set("GITLAB_USER_LOGIN"), ["job", set("CI_JOB_ID")]);
  if (set("BUILDKITE")) return ci("buildkite", set("BUILDKITE_BUILD_CREATOR_EMAIL") ?? set("BUILDKITE_BUILD_CREATOR"), ["job", set("BUILDKITE_JOB_ID")]);
  if (set("CIRCLECI")) return ci("circleci", set("CIRCLE_USERNAME"), ["build", set("CIRCLE_BUILD_NUM")]);
  return `${user}@${host}`;
}

/** The actor of this process (its environment, OS user and host). */
export function currentActor(env: NodeJS.ProcessEnv = process.env): string {
  let user = env.USER ?? env.LOGNAME ?? "unknown";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid (some containers): keep the variable's value
  }
  return actorFrom(env, user, hostname());
}

/**
 * The command line as the audit trail shows it: "kiln" and the arguments, quoted where a
 * word has spaces or quotes, cut to 500 characters.
 *
 *   ["/usr/bin/node", "/x/dist/src/cli/main.js", "deploy", "--reason", "fix login"] → 'kiln deploy --reason "fix login"'
 *   ["node", "main.js"] → "kiln"
 */
export function commandLine(argv: readonly string[]): string {
  const words = argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
  return ["kiln", ...words].join(" ").slice(0, 500);
}
