// canary: the generated-scenario properties and the kept counterexamples (see harness.ts).
import { regressionTests, strategyProperties } from "./harness.js";

strategyProperties("canary");
regressionTests("canary");
