// One repository on one registry, spoken to with Node's fetch: the
// distribution API's ping, authentication and the requests push and pull make.
//
// Authentication follows the registry's WWW-Authenticate challenge:
// - Basic: the credentials go on every request once the registry asked for them;
// - Bearer: a token from the realm for "repository:REPO:pull[,push]" (plus any
//   scope the challenge names), fetched with the credentials as Basic auth if
//   there are any (anonymous otherwise), cached per scope until it expires.
// A 401 on a request is answered once (new challenge → new token → retry);
// request bodies are factories so a retried upload sends its bytes again.

import { KilnError } from "../../errors.js";
import { parseChallenges, pickChallenge, type Challenge } from "./challenge.js";
import { readBody, withIdleTimeout } from "./body.js";
import { credentialsError, responseError, transportError, type RequestContext } from "./errors.js";
import { isLoopbackRegistry, registryBaseUrl } from "./reference.js";

const MAX_REDIRECTS = 5;
const MAX_TOKEN_BYTES = 64 * 1024;

export interface Credentials {
  username: string;
  password: string;
}

export interface ClientOptions {
  registry: string;
  repository: string;
  /** what this client will do: a push also needs pull (HEAD before upload) */
  action: "pull" | "push";
  credentials?: Credentials;
  /** plain HTTP to a non-loopback registry */
  insecure?: boolean;
  /** for tests: the clock token expiry is measured against */
  now?: () => number;
  /** a response body that sends nothing for this long is aborted (default 60 s) */
  idleTimeoutMs?: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** called per attempt, so a retry after a 401 sends the body again */
  body?: () => BodyInit;
  /** statuses that are not errors */
  ok: number[];
  /** for error messages: "manifest 1.0.0", "blob sha256:…" */
  what: string;
  /** milliseconds until response headers; uploads and downloads stream without a deadline after that */
  timeoutMs?: number;
}

type AuthMode = { kind: "none" } | { kind: "basic" } | { kind: "bearer"; realm: string; service?: string; extraScopes: string[] };

export class RegistryClient {
  readonly baseUrl: string;
  readonly registry: string;
  readonly repository: string;
  private readonly opts: ClientOptions;
  private auth: AuthMode = { kind: "none" };
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  private pinged = false;
  /** how many token requests were made (tests check the cache with it) */
  tokenRequests = 0;
  private readonly idleTimeoutMs: number;

  constructor(opts: ClientOptions) {
    this.opts = opts;
    this.registry = opts.registry;
    this.repository = opts.repository;
    this.baseUrl = registryBaseUrl(opts.registry, opts.insecure);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  private ctx(what: string): RequestContext {
    return { registry: this.registry, repository: this.repository, what, hasCredentials: this.opts.credentials !== undefined, action: this.opts.action };
  }

  /** GET /v2/: is this a registry, and which authentication does it want? */
  async ping(): Promise<void> {
    if (this.pinged) return;
    const url = `${this.baseUrl}/v2/`;
    const res = await this.send("GET", url, {}, undefined, 15_000);
    await res.body?.cancel();
    if (res.status === 401) {
      this.adopt(res);
    } else if (res.status !== 200) {
      throw new KilnError("KILN_E_REGISTRY", `${this.registry} does not look like an OCI registry: GET /v2/ answered ${res.status}`, {
        hint: "check the registry address (the distribution API lives at /v2/)",
      });
    }
    this.pinged = true;
  }

  /** `path` is relative to /v2/<repo>/ ("manifests/1.0.0") or an absolute URL (an upload Location). */
  async request(method: string, path: string, o: RequestOptions): Promise<Response> {
    await this.ping();
    const url = /^https?:\/\//.test(path) ? path : `${this.baseUrl}/v2/${this.repository}/${path}`;
    let res = await this.send(method, url, { ...o.headers }, o.body, o.timeoutMs, await this.authFor());
    if (res.status === 401) {
      const before = JSON.stringify(this.auth);
      await res.body?.cancel();
      this.adopt(res);
      // Retry only if there is something new to offer: a first or changed challenge, or a
      // Bearer token that may have expired (dropped, so a fresh one is fetched).
      const retry = this.auth.kind === "bearer" || JSON.stringify(this.auth) !== before;
      if (this.auth.kind === "bearer") this.tokens.clear();
      if (retry && (this.auth.kind !== "basic" || this.opts.credentials)) {
        res = await this.send(method, url, { ...o.headers }, o.body, o.timeoutMs, await this.authFor());
      }
    }
    if (!o.ok.includes(res.status)) throw await responseError(res, this.ctx(o.what));
    return res;
  }

  /** A relative or absolute Location header, as an absolute URL. */
  resolveLocation(res: Response, what: string): string {
    const loc = res.headers.get("location");
    if (!loc) throw new KilnError("KILN_E_REGISTRY", `${this.registry} sent no Location for the ${what}`, { hint: "the registry does not follow the distribution API; check its version" });
    return new URL(loc, `${this.baseUrl}/`).toString();
  }

  /**
   * One request, following redirects by hand so credentials go only where they
   * belong: `auth` is sent to `authOrigin` and nowhere else — not to another
   * host a redirect or a Location header names, and never after an
   * https→http step. The deadline covers each response's headers; after that
   * the body must keep moving (an idle gap longer than `idleTimeoutMs` aborts it).
   */
  private async send(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: (() => BodyInit) | undefined,
    timeoutMs = 60_000,
    auth: { headers: Record<string, string>; origin: string } | undefined = undefined,
  ): Promise<Response> {
    let current = new URL(url);
    let downgraded = false;
    let m = method;
    let b = body;
    for (let hop = 0; ; hop++) {
      const sendAuth = auth !== undefined && !downgraded && current.origin === auth.origin;
      const init: RequestInit & { duplex?: "half" } = { method: m, headers: { "user-agent": "kiln", ...headers, ...(sendAuth ? auth.headers : {}) }, redirect: "manual" };
      if (b !== undefined) {
        init.body = b();
        init.duplex = "half"; // required by Node's fetch for stream bodies, harmless otherwise
      }
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new DOMException(`no answer in ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
      init.signal = ac.signal;
      let res: Response;
      try {
        res = await fetch(current, init);
      } catch (e) {
        throw transportError(ac.signal.aborted ? ac.signal.reason : e, current.toString(), this.registry);
      } finally {
        clearTimeout(timer);
      }
      const location = res.headers.get("location");
      if (![301, 302, 303, 307, 308].includes(res.status) || location === null) return withIdleTimeout(res, ac, this.idleTimeoutMs, this.registry);
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS) throw new KilnError("KILN_E_REGISTRY", `${this.registry} redirected more than ${MAX_REDIRECTS} times (${url})`, { hint: "the registry or a proxy in front of it is misconfigured" });
      const next = new URL(location, current);
      if (next.protocol !== "https:" && next.protocol !== "http:") throw new KilnError("KILN_E_REGISTRY", `${this.registry} redirected to ${next.protocol} (${url})`, { hint: "the registry is misconfigured" });
      if (current.protocol === "https:" && next.protocol === "http:") downgraded = true;
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && m === "POST")) {
        m = "GET";
        b = undefined;
      }
      current = next;
    }
  }

  /** Switch to the scheme a 401's challenge asks for. */
  private adopt(res: Response): void {
    const header = res.headers.get("www-authenticate") ?? "";
    const c: Challenge | undefined = pickChallenge(parseChallenges(header));
    if (!c) throw credentialsError(this.ctx("/v2/"), 401, header ? `unsupported challenge ${header.split(/\s/)[0]}` : "no WWW-Authenticate challenge");
    if (c.scheme === "basic") {
      if (!this.opts.credentials) throw credentialsError(this.ctx("/v2/"), 401);
      this.auth = { kind: "basic" };
      return;
    }
    const ours = this.scope();
    const extraScopes = (c.params.scope ?? "").split(" ").filter((s) => s !== "" && s !== ours);
    this.auth = { kind: "bearer", realm: c.params.realm!, service: c.params.service, extraScopes };
  }

  private scope(): string {
    return `repository:${this.repository}:${this.opts.action === "push" ? "pull,push" : "pull"}`;
  }

  private basic(): string {
    const c = this.opts.credentials!;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
  }

  /** Credentials and tokens belong to the registry's own origin only. */
  private async authFor(): Promise<{ headers: Record<string, string>; origin: string } | undefined> {
    const origin = new URL(this.baseUrl).origin;
    if (this.auth.kind === "basic") return { headers: { authorization: this.basic() }, origin };
    if (this.auth.kind === "bearer") return { headers: { authorization: `Bearer ${await this.token(this.auth)}` }, origin };
    return undefined;
  }

  private async token(a: Extract<AuthMode, { kind: "bearer" }>): Promise<string> {
    const scopes = [this.scope(), ...a.extraScopes];
    const key = scopes.join(" ");
    const now = (this.opts.now ?? Date.now)();
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > now) return cached.token;

    let url: URL;
    try {
      url = new URL(a.realm);
    } catch {
      throw new KilnError("KILN_E_REGISTRY", `${this.registry} names a token realm that is not a URL: ${JSON.stringify(a.realm)}`, { hint: "the registry's token auth is misconfigured" });
    }
    if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackRegistry(url.host))) {
      throw new KilnError("KILN_E_REGISTRY", `${this.registry} names a token realm that is not HTTPS: ${a.realm}`, {
        hint: "kiln sends credentials to a token service only over HTTPS (or on this machine's loopback); fix the registry's token realm",
      });
    }
    if (a.service) url.searchParams.set("service", a.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const auth = this.opts.credentials ? { headers: { authorization: this.basic() }, origin: url.origin } : undefined;
    this.tokenRequests++;
    const res = await this.send("GET", url.toString(), { accept: "application/json" }, undefined, 30_000, auth);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw credentialsError(this.ctx("token"), res.status, "from the token service");
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new KilnError("KILN_E_REGISTRY", `the token service ${url.origin}${url.pathname} answered ${res.status}`, { hint: "the registry's token service failed: retry, or check its logs" });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown } = {};
    try {
      body = JSON.parse((await readBody(res, MAX_TOKEN_BYTES, `the token from ${url.origin}`)).toString("utf8")) as typeof body;
    } catch (e) {
      if (e instanceof KilnError) throw e;
    }
    const token = typeof body.token === "string" ? body.token : typeof body.access_token === "string" ? body.access_token : undefined;
    if (!token) throw new KilnError("KILN_E_REGISTRY", `the token service ${url.origin}${url.pathname} sent no token`, { hint: "the registry's token service is misconfigured" });
    // The spec's default lifetime is 60 s; renew 10 s early so a token never expires mid-request.
    const lifetime = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
    this.tokens.set(key, { token, expiresAt: now + Math.max(1, lifetime - 10) * 1000 });
    return token;
  }
}
