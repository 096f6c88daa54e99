import { fileURLToPath } from "node:url";

/** test/fixtures/review (this file runs as dist/test/review/helpers.js) */
export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/review/", import.meta.url));

/** the compiled CLI */
export { KILN_BIN as CLI } from "../support/kiln-bin.js";

/** the repository root */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
