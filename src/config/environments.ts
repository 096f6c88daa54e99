// kiln.yaml `environments:`: stages (staging, production…) that run the same image, each with its
// own fleet. Pure helpers: which environment a verb acts on, how an environment's overrides merge
// over the rest of the file, and the key its fleet is known by in state, providers and the router.

import { KilnError } from "../errors.js";
import { closest } from "./suggest.js";

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Overrides merged over the file: mappings merge key by key, anything else (lists, scalars)
 * replaces. The inputs are not modified.
 *
 *   {strategy:{type:"rolling",rolling:{minHealthyPercent:100}}} + {strategy:{rolling:{minHealthyPercent:50}}}
 *     → {strategy:{type:"rolling",rolling:{minHealthyPercent:50}}}
 *   {env:{A:"1",B:"2"}} + {env:{B:"3"}} → {env:{A:"1",B:"3"}}
 *   {strategy:{rolling:{checkpoints:[25,50]}}} + {strategy:{rolling:{checkpoints:[]}}} → checkpoints []
 *   {instances:3} + {instances:1} → {instances:1}
 */
export function mergeOverrides(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isRecord(v) && isRecord(base[k]) ? mergeOverrides(base[k], v) : structuredClone(v);
  }
  return out;
}

/**
 * The environment a verb acts on: the one asked for (`--env`, else KILN_ENV), else
 * `defaultEnvironment`, else the first one kiln.yaml lists; undefined when it lists none.
 *
 *   ([], undefined, undefined) → undefined              (["staging","production"], undefined, undefined) → "staging"
 *   (["staging","production"], "production", undefined) → "production"
 *   (["staging","production"], undefined, "production") → "production"
 *   (["staging"], "prod", …) → KILN_E_USAGE, did you mean…   ([], "staging", …) → KILN_E_USAGE
 */
export function chooseEnvironment(declared: readonly string[], wanted: string | undefined, defaultEnvironment: string | undefined): string | undefined {
  if (wanted !== undefined && wanted !== "") {
    if (declared.length === 0) {
      throw new KilnError("KILN_E_USAGE", `--env ${wanted}: kiln.yaml declares no environments`, {
        hint: "add `environments:` to kiln.yaml (e.g. staging and production), or leave out --env and KILN_ENV",
      });
    }
    if (!declared.includes(wanted)) {
      const near = closest(wanted, declared);
      throw new KilnError("KILN_E_USAGE", `unknown environment "${wanted}"`, {
        hint: `${near ? `did you mean "${near}"? ` : ""}kiln.yaml declares: ${declared.join(", ")}`,
      });
    }
    return wanted;
  }
  if (declared.length === 0) return undefined;
  return defaultEnvironment ?? declared[0];
}

/**
 * The key an environment's fleet is known by: the state's service column, the controller's lease,
 * instance ids, engine labels and volume names. Without environments it is the service name, so a
 * kiln.yaml without `environments:` keeps every existing name. "-" because the key must be valid
 * everywhere the name is (container, Swarm service and volume names); neither part contains a
 * "." and both start with a letter.
 *
 *   ("hello", undefined) → "hello"     ("hello", "staging") → "hello-staging"
 */
export function serviceKey(name: string, environment: string | undefined): string {
  return environment === undefined ? name : `${name}-${environment}`;
}
