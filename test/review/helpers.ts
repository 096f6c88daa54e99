import { fileURLToPath } from "node:url";

/** test/fixtures/review (this file runs as dist/test/review/helpers.js) */
export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/review/", import.meta.url));

/** the compiled CLI */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** the repository root */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
