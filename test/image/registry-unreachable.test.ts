// Issue 16: a registry that cannot be reached is reported as unreachable (host:port, the network
// error, what to check), never as a spelling mistake. Rows are transportError's worked examples;
// the errors are built by hand (no lookup leaves the machine).

import assert from "node:assert/strict";
import { test } from "node:test";
import { transportError } from "../../src/image/registry/errors.js";

const fetchFailed = (code: string) => Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error(code), { code }) });

test("transportError: every network failure says 'unreachable' with its code and what to check, none suggests a typo", () => {
  const rows: { code: string; registry: string; message: RegExp; hint: RegExp }[] = [
    { code: "ECONNREFUSED", registry: "127.0.0.1:5001", message: /^the registry 127\.0\.0\.1:5001 is unreachable: cannot connect to 127\.0\.0\.1:5001: connection refused \(ECONNREFUSED, http:\/\/127\.0\.0\.1:5001\/v2\/\)$/, hint: /running and listening on 127\.0\.0\.1:5001/ },
    { code: "ENOTFOUND", registry: "reg.example:5000", message: /^the registry reg\.example:5000 is unreachable: its host name does not resolve \(ENOTFOUND, / , hint: /network and DNS.*then the registry host name in reg\.example:5000/ },
    { code: "EAI_AGAIN", registry: "reg.example:5000", message: /is unreachable: name resolution failed \(no DNS answer\) \(EAI_AGAIN, /, hint: /network and DNS/ },
    { code: "EHOSTUNREACH", registry: "10.0.0.9:5000", message: /^the registry 10\.0\.0\.9:5000 is unreachable: no route to the host \(EHOSTUNREACH, /, hint: /network path to 10\.0\.0\.9:5000/ },
    { code: "ENETUNREACH", registry: "10.0.0.9:5000", message: /is unreachable: the network is unreachable \(ENETUNREACH/, hint: /network path/ },
    { code: "ECONNRESET", registry: "10.0.0.9:5000", message: /is unreachable: the connection was reset \(ECONNRESET/, hint: /network path/ },
    { code: "UND_ERR_CONNECT_TIMEOUT", registry: "10.0.0.9:5000", message: /is unreachable: the connection timed out \(UND_ERR_CONNECT_TIMEOUT/, hint: /network path/ },
  ];
  for (const r of rows) {
    const e = transportError(fetchFailed(r.code), `http://${r.registry}/v2/`, r.registry);
    assert.equal(e.code, "KILN_E_REGISTRY", r.code);
    assert.match(e.message, r.message, r.code);
    assert.match(e.hint ?? "", r.hint, r.code);
    assert.doesNotMatch(`${e.message} ${e.hint}`, /spell|typo/i, r.code);
  }
});

test("transportError: a TLS failure over https still points at the CA or --insecure", () => {
  const e = transportError(fetchFailed("ERR_SSL_WRONG_VERSION_NUMBER"), "https://127.0.0.1:5000/v2/", "127.0.0.1:5000");
  assert.match(e.message, /^TLS to 127\.0\.0\.1:5000 failed/);
  assert.match(e.hint ?? "", /--insecure/);
});
