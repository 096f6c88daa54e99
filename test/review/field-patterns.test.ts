// The patterns a trial on independently written deploy scripts got wrong (issue 13), each
// as a small script of our own: the mistakes it missed and the correct scripts it flagged.
// Each expectation lists every deploy-path and image finding, "RULE@line".

import assert from "node:assert/strict";
import { test } from "node:test";
import { checkShell } from "../../src/review/shell/check.js";

const RULES = ["KR001", "KR002", "KR003", "KR019", "KR030", "KR031", "KR043", "KR051"];

function ids(script: string): string[] {
  const r = checkShell(script, "deploy.sh");
  assert.ok(!("error" in r), JSON.stringify(r));
  return r.findings
    .filter((f) => RULES.includes(f.ruleId))
    .sort((a, b) => a.pos.line - b.pos.line || a.ruleId.localeCompare(b.ruleId))
    .map((f) => `${f.ruleId}@${f.pos.line}`);
}

test("missed before: a stop-first swap whose health loop only warns, with :latest in a variable", () => {
  const script = `#!/usr/bin/env bash
# one copy only: the port cannot be bound twice, so the old container goes first
APP_IMAGE="registry.internal:5000/shop/storefront:latest"
docker pull "$APP_IMAGE"
docker container stop storefront || true
docker container rm storefront || true
docker run -d --name storefront -p 80:8080 "$APP_IMAGE"
for n in 1 2 3 4 5 6 7 8 9 10; do
  curl -fs http://localhost/healthz >/dev/null && break
  sleep 3
done
curl -fs http://localhost/healthz >/dev/null || echo "warning: storefront is not answering yet"
`;
  assert.deepEqual(ids(script), ["KR030@3", "KR001@5"]);
});

test("missed before: removal through a kubectl wrapper function, reported at the call", () => {
  const script = `#!/usr/bin/env bash
set -euo pipefail
kc() { kubectl --context "$KUBE_CONTEXT" -n "$NAMESPACE" "$@"; }
live=$(kc get service checkout -o jsonpath='{.spec.selector.track}')
next=$([ "$live" = blue ] && echo green || echo blue)
kc apply -f "k8s/checkout-$next.yaml"
kc delete deployment "checkout-$live"
kc rollout status "deployment/checkout-$next" --timeout=5m
kc patch service checkout -p "{\\"spec\\":{\\"selector\\":{\\"track\\":\\"$next\\"}}}"
`;
  assert.deepEqual(ids(script), ["KR001@7"]);
});

test("missed before: terraform destroy -target of the old colour through a command variable, with applies that do not wait", () => {
  const script = `#!/bin/sh
set -e
TF="terraform -chdir=envs/prod"
$TF apply -auto-approve -var active_colour=green
$TF destroy -auto-approve -target=module.blue
`;
  assert.deepEqual(ids(script), ["KR001@5"]);
});

test("missed before: an && chain that scales the old Deployment to 0 before rollout status, exit only after", () => {
  const script = `#!/bin/bash
K="kubectl --context prod-eu"
$K apply -f orders-v2.yaml && $K scale deployment orders-v1 --replicas 0 && $K rollout status deployment/orders-v2 --timeout 180s || { echo "orders-v2 did not roll out" >&2; exit 1; }
`;
  assert.deepEqual(ids(script), ["KR001@3"]);
});

test("false alarm before: the idle slot is cleared first, the old container goes after an until loop on Health.Status that exits on timeout", () => {
  const script = `#!/bin/bash
set -u
live=$(cat /srv/active-slot)
if [ "$live" = a ]; then idle=b; else idle=a; fi
docker rm -f "api-$idle" 2>/dev/null || true
docker run -d --name "api-$idle" --health-cmd 'wget -qO- localhost:8080/ready' "$IMAGE_REF"
waited=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "api-$idle")" = healthy ]; do
  waited=$((waited + 5))
  if [ "$waited" -gt 180 ]; then
    echo "api-$idle never became healthy; removing it" >&2
    docker rm -f "api-$idle"
    exit 1
  fi
  sleep 5
done
echo "$idle" > /srv/active-slot
docker stop "api-$live"
`;
  assert.deepEqual(ids(script), []);
});

test("false alarm before: no set -e, every step ends in || die, old containers stop only after each new one's health loop", () => {
  const script = `#!/bin/bash
die() { printf 'deploy failed: %s\\n' "$*" >&2; exit 1; }
for host in $WEB_HOSTS; do
  ssh -o BatchMode=yes "deploy@$host" docker pull "$IMAGE_REF" || die "pull on $host"
  ssh -o BatchMode=yes "deploy@$host" docker run -d --name web-next -p 8081:8080 "$IMAGE_REF" || die "start on $host"
  attempts=0
  until ssh -o BatchMode=yes "deploy@$host" curl -fsS http://127.0.0.1:8081/health; do
    attempts=$((attempts + 1))
    [ "$attempts" -lt 40 ] || die "web-next on $host is unhealthy"
    sleep 3
  done
  ssh -o BatchMode=yes "deploy@$host" docker stop web || die "stop old on $host"
done
`;
  assert.deepEqual(ids(script), []);
});

test("false alarm before: waiter && scale the old group to 0 && … || { remove the new group; exit 1; }", () => {
  const script = `#!/bin/bash
aws autoscaling create-auto-scaling-group --cli-input-json "file://asg-$RELEASE.json"
aws elbv2 wait target-in-service --target-group-arn "$TG_ARN" \\
  && aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$OLD_ASG" --min-size 0 --desired-capacity 0 \\
  && echo "old group drained" \\
  || { echo "new group unhealthy" >&2; aws autoscaling delete-auto-scaling-group --auto-scaling-group-name "$NEW_ASG" --force-delete; exit 1; }
`;
  assert.deepEqual(ids(script), []);
});

test("false alarm before: a -v /tmp:/tmp mount is not an image", () => {
  const script = `#!/bin/bash
set -e
ssh "$HOST" docker run -d --rm -v /tmp:/tmp --name batch registry.internal/jobs/batch:2.4.1@sha256:${"a".repeat(64)}
`;
  assert.deepEqual(ids(script), []);
});

test("a finding carries the control-flow path that led to it (what --explain prints)", () => {
  const script = `#!/bin/bash
set -e
check() { curl -fsS "$1/health"; }
set +e
check "$NEW_URL"
aws ec2 terminate-instances --instance-ids "$OLD_ID"
`;
  const r = checkShell(script, "deploy.sh");
  assert.ok(!("error" in r));
  const f = r.findings.find((x) => x.ruleId === "KR001");
  assert.ok(f?.trace, JSON.stringify(r.findings));
  assert.deepEqual(f.trace, [
    "line 2: set -e: a failing command stops the script from here",
    "line 4: set +e: failing commands no longer stop the script",
    "line 5: calls check()",
    "line 3: `curl --fail` fails",
    "line 6: `aws ec2 terminate-instances` removes capacity while no passed health check is guaranteed on this path (set -e is off here)",
  ]);
});
