import { fileURLToPath } from "node:url";

/** test/fixtures/review (this file runs as dist/test/review/helpers.js) */
export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/review/", import.meta.url));

/** the compiled CLI */
export { KILN_BIN as CLI } from "../support/kiln-bin.js";

/** the repository root */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/**
 * A correct deploy script of about `count` lines (a bench and a hang guard use it): per service,
 * run the new container, wait for Docker's health status with a bounded loop whose last attempt
 * exits, then stop the old one.
 */
export function longDeployScript(count: number): string[] {
  const lines = ["#!/usr/bin/env bash", "set -euo pipefail", 'die() { echo "$*" >&2; exit 1; }'];
  for (let i = 0; lines.length < count; i++) {
    lines.push(
      `deploy_${i}() {`,
      `  docker run -d --name "svc-${i}-next" "registry.internal/app/svc-${i}@sha256:${"0".repeat(64)}" || die "run ${i}"`,
      `  until [ "$(docker inspect -f '{{.State.Health.Status}}' "svc-${i}-next")" = healthy ]; do`,
      `    n=$((n + 1)); if [ "$n" -gt 60 ]; then docker rm -f "svc-${i}-next"; die "svc-${i} unhealthy"; fi; sleep 2`,
      "  done",
      `  docker stop "svc-${i}" || die "stop ${i}"`,
      "}",
      `deploy_${i}`,
    );
  }
  return lines;
}
