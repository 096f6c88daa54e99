// Bakes examples/stateful the way it ran before kiln: as root (image config User "0:0").
// kiln.yaml refuses a root user, which is the point of adopting kiln; this script
// builds the "before" image with kiln's own bake so `kiln audit` has it to fail.
//
//   npm run build && node examples/stateful/bake-as-root.mjs
//   node dist/src/cli/main.js -f examples/stateful/kiln.yaml audit stateful:1.0.0-root --smoke examples/stateful/smoke.txt
import { fileURLToPath } from "node:url";
import { bake, openStore } from "../../dist/src/image/index.js";
import { homeFor } from "../../dist/src/home.js";
import { loadSpec } from "../../dist/src/config/index.js";
import { recipeOf } from "../../dist/src/cli/verbs/bake.js";

const file = fileURLToPath(new URL("./kiln.yaml", import.meta.url));
const loaded = loadSpec(file);
const recipe = { ...recipeOf(loaded), version: `${loaded.spec.version}-root`, user: "0:0" };
const r = await bake(recipe, { store: openStore(homeFor(file)) });
console.log(`${r.ref} ${r.digest}`);
