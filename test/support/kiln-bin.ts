// The built CLI as package.json's `bin` names it: tests that need CLI behaviour run it as a
// subprocess (and live under an integration/ folder); none imports the CLI's modules.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { bin: { kiln: string } };

export const KILN_BIN = `${root}${pkg.bin.kiln}`;
