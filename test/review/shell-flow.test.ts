// Table tests for the shell dataflow: which removals run where a health check is
// guaranteed to have passed. Each case is a small script and the rule ids it must produce.

import assert from "node:assert/strict";
import { test } from "node:test";
import { checkShell } from "../../src/review/shell/check.js";

const TG = `--target-group-arn "$TG"`;
const WAIT = `aws elbv2 wait target-in-service ${TG}`;
const KILL = `aws ec2 terminate-instances --instance-ids "$OLD"`;

const cases: { name: string; script: string; expect: string[] }[] = [
  { name: "terminate with nothing before it", script: KILL, expect: ["KR001@1"] },
  { name: "set -e makes a bare waiter a guard", script: `set -e\n${WAIT}\n${KILL}`, expect: [] },
  { name: "without set -e a bare waiter protects nothing", script: `${WAIT}\n${KILL}`, expect: ["KR003@1", "KR001@2"] },
  { name: "set -o errexit counts like set -e", script: `set -o errexit\n${WAIT}\n${KILL}`, expect: [] },
  { name: "a shebang -e counts", script: `#!/bin/bash -e\n${WAIT}\n${KILL}`, expect: [] },
  { name: "set +e turns the guard off again", script: `set -e\nset +e\n${WAIT}\n${KILL}`, expect: ["KR003@3", "KR001@4"] },
  { name: "|| exit guards", script: `${WAIT} || exit 1\n${KILL}`, expect: [] },
  { name: "&& guards the right-hand side only", script: `${WAIT} && ${KILL}\n${KILL}`, expect: ["KR001@2"] },
  { name: "|| echo does not guard", script: `${WAIT} || echo failed\n${KILL}`, expect: ["KR001@2"] },
  { name: "if with exit in the failing branch", script: `if ! ${WAIT}; then exit 1; fi\n${KILL}`, expect: [] },
  { name: "if whose failing branch only logs", script: `if ${WAIT}; then echo ok; else echo bad; fi\n${KILL}`, expect: ["KR001@2"] },
  { name: "if without else", script: `if ${WAIT}; then echo ok; fi\n${KILL}`, expect: ["KR001@2"] },
  { name: "removal inside the healthy branch", script: `if ${WAIT}; then ${KILL}; fi`, expect: [] },
  { name: "removal inside the failing branch is a rollback", script: `if ! ${WAIT}; then ${KILL}; exit 1; fi`, expect: [] },
  { name: "elif chain", script: `if [ -z "$X" ]; then exit 2; elif ! ${WAIT}; then exit 1; fi\n${KILL}`, expect: [] },
  { name: "until loop on a health check", script: `until curl -fsS "$URL"; do sleep 2; done\n${KILL}`, expect: [] },
  { name: "while ! loop on a health check", script: `while ! curl -fsS "$URL"; do sleep 2; done\n${KILL}`, expect: [] },
  { name: "retry loop that breaks, then nothing", script: `for i in 1 2 3; do curl -fsS "$URL" && break; sleep 2; done\n${KILL}`, expect: ["KR001@2"] },
  { name: "while true with break on health", script: `while true; do if curl -fsS "$URL"; then break; fi; sleep 1; done\n${KILL}`, expect: [] },
  { name: "bare return after || returns the failure", script: `check() { curl -fsS "$URL" || return; echo up; }\ncheck || exit 1\n${KILL}`, expect: [] },
  { name: "return inside a subshell leaves only the subshell", script: `f() { ( ${WAIT} || return 1 ); ${KILL}; }\nf`, expect: ["KR003@1", "KR001@1"] },
  { name: "function that returns the check's status", script: `check() { curl -fsS "$URL"; }\ncheck || exit 1\n${KILL}`, expect: [] },
  { name: "function with return $?", script: `check() { ${WAIT}; return $?; }\nif ! check; then exit 1; fi\n${KILL}`, expect: [] },
  { name: "function called before the check", script: `kill_old() { ${KILL}; }\nset -e\nkill_old\n${WAIT}`, expect: ["KR001@1"] },
  { name: "uncalled function is read from a fresh state", script: `cleanup() { ${KILL}; }`, expect: ["KR001@1"] },
  { name: "trap handler removal is a rollback", script: `cleanup() { ${KILL}; }\ntrap cleanup ERR`, expect: [] },
  { name: "ERR trap that exits works like set -e", script: `trap 'exit 1' ERR\n${WAIT}\n${KILL}`, expect: [] },
  { name: "set -e is ignored in a function used as a condition", script: `set -e\nf() { ${WAIT}; ${KILL}; }\nif f; then echo ok; fi`, expect: ["KR001@2"] },
  { name: "x=$(check) has the check's status", script: `set -e\nout=$(curl -fsS "$URL")\n${KILL}`, expect: [] },
  { name: "local x=$(check) masks it", script: `set -e\nf() { local out=$(curl -fsS "$URL"); ${KILL}; }\nf`, expect: ["KR001@2"] },
  { name: "probe compared to healthy", script: `s=$(aws elbv2 describe-target-health ${TG} --output text)\n[ "$s" = healthy ] || exit 1\n${KILL}`, expect: [] },
  { name: "probe compared with [[ != ]] in a while", script: `while [[ "$(docker inspect -f '{{.State.Health.Status}}' new)" != healthy ]]; do sleep 1; done\ndocker stop old`, expect: [] },
  { name: "probe piped to grep -q", script: `aws elbv2 describe-target-health ${TG} | grep -q healthy || exit 1\n${KILL}`, expect: [] },
  { name: "health check piped to tee is not a check", script: `set -e\ncurl -fsS "$URL" | tee log\n${KILL}`, expect: ["KR001@3"] },
  { name: "with pipefail, tee keeps the status", script: `set -eo pipefail\ncurl -fsS "$URL" | tee log\n${KILL}`, expect: [] },
  { name: "a flag set only when healthy", script: `ok=0\nfor i in $(seq 1 5); do if curl -fsS "$URL"; then ok=1; break; fi; done\n(( ok == 1 )) || exit 1\n${KILL}`, expect: [] },
  { name: "a flag set regardless", script: `ok=0\nfor i in $(seq 1 5); do curl -fsS "$URL"; ok=1; done\n[ "$ok" = 1 ] || exit 1\n${KILL}`, expect: ["KR003@2", "KR001@4"] },
  { name: "background health check proves nothing", script: `set -e\n${WAIT} &\n${KILL}`, expect: ["KR001@3"] },
  { name: "a check inside a subshell that exits", script: `( curl -fsS "$URL" || exit 1 ) || exit 1\n${KILL}`, expect: [] },
  { name: "case arm that exits on failure", script: `case "$ENV" in prod) ${WAIT} || exit 1 ;; *) exit 0 ;; esac\n${KILL}`, expect: [] },
  { name: "ssh running the removal remotely", script: `ssh "$OLD_HOST" 'docker stop web'`, expect: ["KR001@1"] },
  { name: "ssh running a health check remotely", script: `ssh "$NEW_HOST" 'curl -fsS localhost:8080/healthz' || exit 1\nssh "$OLD_HOST" 'docker stop web'`, expect: [] },
  { name: "ssh that changes the host is entering it", script: `ssh "$HOST" 'sudo systemctl reload web'`, expect: ["KR043@1"] },
  { name: "restarting the only app unit is a stop-first swap", script: `ssh "$HOST" 'sudo systemctl restart web'`, expect: ["KR001@1", "KR043@1"] },
  { name: "restarting the proxy is not removing capacity", script: `sudo systemctl restart nginx`, expect: [] },
  { name: "die from a sourced library exits", script: `. ./lib.sh
curl -fsS "$URL" || die "unhealthy"
${KILL}`, expect: [] },
  { name: "a project helper named for health is a gate", script: `./scripts/wait-for-healthy.sh "$URL" || exit 1
${KILL}`, expect: [] },
  { name: "nc -z polling loop is a gate", script: `until nc -z 127.0.0.1 8080; do sleep 1; done
docker stop old`, expect: [] },
  { name: "a counted retry loop whose last attempt exits is left only healthy", script: `for i in {1..30}; do\n  if curl -sf "$URL"; then break; fi\n  if [ "$i" -eq 30 ]; then docker rm -f web-new; exit 1; fi\n  sleep 2\ndone\ndocker stop web-old`, expect: [] },
  { name: "the same with seq and [[ == ]] && { exit; }", script: `for n in $(seq 1 20); do\n  curl -sf "$URL" && break\n  [[ $n == 20 ]] && { echo never; exit 1; }\n  sleep 3\ndone\ndocker stop web-old`, expect: [] },
  { name: "a counted retry loop that just runs out is no gate", script: `for n in $(seq 1 20); do\n  curl -sf "$URL" && break\n  sleep 3\ndone\ndocker stop web-old`, expect: ["KR001@5"] },
  { name: "a status word UP from a probe is healthy", script: `s=$(curl -s "$URL" | jq -r .status)\n[ "$s" == "UP" ] || exit 1\ndocker stop web-old`, expect: [] },
  { name: "docker restart is a stop-first swap", script: `docker restart web
curl -fsS "$URL"`, expect: ["KR001@1"] },
  { name: "traffic switch before a check", script: `aws elbv2 modify-listener --listener-arn "$L" --default-actions Type=forward,TargetGroupArn=$G`, expect: ["KR002@1"] },
  { name: "blue removed right after the switch", script: `set -e\n${WAIT}\naws route53 change-resource-record-sets --hosted-zone-id Z --change-batch file://b.json\n${KILL}`, expect: ["KR019@4"] },
  { name: "blue removed after a soak", script: `set -e\n${WAIT}\naws route53 change-resource-record-sets --hosted-zone-id Z --change-batch file://b.json\nsleep 600\n${KILL}`, expect: [] },
  { name: "only the first unsafe removal on a path is reported", script: `docker stop old\ndocker rm old`, expect: ["KR001@1"] },
  { name: "kubectl delete job is not capacity", script: `kubectl delete job migrate`, expect: [] },
  { name: "scale to a non-zero count is not removal", script: `aws autoscaling set-desired-capacity --auto-scaling-group-name a --desired-capacity 6`, expect: [] },
  { name: "sudo and timeout are looked through", script: `set -e\nsudo timeout 300 kubectl rollout status deploy/web\nsudo kubectl delete deployment web-blue`, expect: [] },
];

for (const c of cases) {
  test(`flow: ${c.name}`, () => {
    const r = checkShell(`${c.script}\n`, "case.sh");
    assert.ok(!("error" in r), JSON.stringify(r));
    const got = r.findings
      .filter((f) => ["KR001", "KR002", "KR003", "KR019", "KR043"].includes(f.ruleId))
      .sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col || a.ruleId.localeCompare(b.ruleId))
      .map((f) => `${f.ruleId}@${f.pos.line}`);
    assert.deepEqual(got, c.expect, c.script);
  });
}

test("a syntax error is returned with its position", () => {
  const r = checkShell("echo hi\nif then\n", "bad.sh");
  assert.ok("error" in r);
  assert.equal(r.error.line, 2);
});

test("KR001's message names the ignored check and the call site", () => {
  const r = checkShell(`f() { ${KILL}; }\n${WAIT}\nf\n`, "m.sh");
  assert.ok(!("error" in r));
  const f = r.findings.find((x) => x.ruleId === "KR001");
  assert.ok(f);
  assert.match(f.message, /health check at line 2 does not stop the script/);
  assert.match(f.message, /call at line 3/);
});

test("a script's role decides the package rules: bake scripts pin, deploy scripts may install tools, user data may not install", () => {
  const ids = (name: string) => {
    const r = checkShell("set -e\napt-get install -y jq\n", name);
    assert.ok(!("error" in r));
    return r.findings.map((f) => f.ruleId);
  };
  assert.deepEqual(ids("ci/deploy.sh"), []);
  assert.deepEqual(ids("packer/scripts/base.sh"), ["KR035"]);
  assert.deepEqual(ids("infra/user-data.sh"), ["KR033"]);
  const forced = checkShell("apt-get dist-upgrade -y\n", "anything.sh", "bake");
  assert.ok(!("error" in forced));
  assert.deepEqual(forced.findings.map((f) => f.ruleId), ["KR034"]);
});
