// The shared provider conformance suite on the in-memory fake, with a manual clock: what the
// fake cannot do (it runs no program) is skipped with the reason.

import { FakeProvider, manualClock } from "../../src/providers/fake/index.js";
import { providerConformance } from "./conformance.js";
import { CRASH_EXIT_CODE, type FixtureName } from "./fixture-app.js";

let worlds = 0;

providerConformance("fake", async () => {
  const clock = manualClock();
  const provider = new FakeProvider(clock);
  // The fake's behaviour is per release: each fixture is its own release.
  provider.behave("release-crash", { exitAfter: 100, exitCode: CRASH_EXIT_CODE });
  const service = `fake${++worlds}`;
  let n = 0;
  const noProgram = "the fake runs no program: it has no process, filesystem or user to observe";
  return {
    provider,
    service,
    request: (fixture: FixtureName, over = {}) => ({
      instanceId: `${service}-${++n}`,
      service,
      release: `release-${fixture}`,
      digest: `sha256:${"ab".repeat(32)}`,
      env: {},
      volumes: [],
      ...over,
    }),
    lacks: {
      http: noProgram,
      signals: noProgram,
      filesystem: noProgram,
      volumes: noProgram,
      user: noProgram,
      adopt: "the fake keeps its instances in the object's memory: a fresh object starts empty, like a fresh machine",
    },
    appUid: 1000,
    pass: async (ms: number) => clock.advance(ms),
  };
});
