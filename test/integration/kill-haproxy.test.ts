// The kill test with HAProxy as the data plane: the controller (which drives HAProxy over its
// runtime API) is SIGKILLed at random moments; HAProxy keeps serving and a restarted
// controller attaches to it again. Same rollouts, same assertions as kill.test.ts.
// 9 kills by default, three per rollout, so rolling, blue-green and canary each take kills
// (KILN_KILL_HAPROXY_COUNT; 30 passed in 5.6 min on 2026-12-03): the 30-kill
// headline runs on the local provider and kiln's proxy (kill.test.ts), and CI keeps under 45 minutes.

process.env.KILN_KILL_ROUTER = "haproxy";
process.env.KILN_KILL_COUNT = process.env.KILN_KILL_HAPROXY_COUNT ?? "9";
await import("./kill.test.js");
