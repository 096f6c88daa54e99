// The syntax tree read from GopherJS's internal values must be the tree the exported
// wrapper gives, node for node, positions included.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseShell, parseShellViaWrapper } from "../../src/review/shell/ast.js";
import { FIXTURES } from "./helpers.js";

const SAMPLE = `#!/bin/bash
set -euo pipefail
k() { kubectl -n "$NS" "$@"; }
for i in $(seq 1 3); do [[ "$(curl -s -o /dev/null -w '%{http_code}' "$U")" == 200 ]] && break; done
case "$1" in a|b) echo "é ü $x" ;; *) (( n += 1 )) ;; esac
if ! until docker inspect web | grep -q healthy; do sleep 1; done; then exit 1; elif true; then :; else false; fi
declare -a arr=(one "two $x") ; local y=\${z:-d}
time { ssh h 'docker stop web' & } 2>/dev/null
while read -r id; do aws ec2 terminate-instances --instance-ids "$id"; done < <(cat ids)
`;

function shellFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? shellFiles(join(dir, d.name)) : d.name.endsWith(".sh") ? [join(dir, d.name)] : []));
}

test("fast tree conversion equals the wrapper's on a sample and on every corpus script", () => {
  const texts = [SAMPLE, ...shellFiles(FIXTURES).map((f) => readFileSync(f, "utf8"))];
  let n = 0;
  for (const t of texts) {
    const fast = parseShell(t, "x.sh");
    if ("error" in fast) continue;
    assert.deepEqual(JSON.parse(JSON.stringify(fast.file)), JSON.parse(JSON.stringify(parseShellViaWrapper(t, "x.sh"))));
    n++;
  }
  assert.ok(n > 20, `only ${n} scripts compared`);
});
