// blue-green: the generated-scenario properties and the kept counterexamples (see harness.ts).
import { regressionTests, strategyProperties } from "./harness.js";

strategyProperties("blue-green");
regressionTests("blue-green");
