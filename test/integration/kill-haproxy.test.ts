// The kill test with HAProxy as the data plane: the controller (which drives HAProxy over its
// runtime API) is SIGKILLed at 30 random moments; HAProxy keeps serving and a restarted
// controller attaches to it again. Same rollouts, same assertions as kill.test.ts.

process.env.KILN_KILL_ROUTER = "haproxy";
await import("./kill.test.js");
