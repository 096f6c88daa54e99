// Preloaded into the unit tier (node --import): see unit-guard.cjs, which does the work (a worker
// thread loads that one with --require).
import { createRequire } from "node:module";

createRequire(import.meta.url)("./unit-guard.cjs");
