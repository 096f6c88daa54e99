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
import { credentialsError, responseError, transportError, type RequestContext } from "./errors.js";
import { registryBaseUrl } from "./reference.js";

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

  constructor(opts: ClientOptions) {
    this.opts = opts;
    this.registry = opts.registry;
    this.repository = opts.repository;
    this.baseUrl = registryBaseUrl(opts.registry, opts.insecure);
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
    let res = await this.send(method, url, { ...o.headers, ...(await this.authHeader()) }, o.body?.(), o.timeoutMs);
    if (res.status === 401) {
      const before = JSON.stringify(this.auth);
      await res.body?.cancel();
      this.adopt(res);
      // Retry only if there is something new to offer: a first or changed challenge, or a
      // Bearer token that may have expired (dropped, so a fresh one is fetched).
      const retry = this.auth.kind === "bearer" || JSON.stringify(this.auth) !== before;
      if (this.auth.kind === "bearer") this.tokens.clear();
      if (retry && (this.auth.kind !== "basic" || this.opts.credentials)) {
        res = await this.send(method, url, { ...o.headers, ...(await this.authHeader()) }, o.body?.(), o.timeoutMs);
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

  private async send(method: string, url: string, headers: Record<string, string>, body: BodyInit | undefined, timeoutMs = 60_000): Promise<Response> {
    const init: RequestInit & { duplex?: "half" } = { method, headers: { "user-agent": "kiln", ...headers }, redirect: "follow" };
    if (body !== undefined) {
      init.body = body;
      init.duplex = "half"; // required by Node's fetch for stream bodies, harmless otherwise
    }
    // The deadline covers the response headers only: abort it once they are in,
    // so a long blob transfer is not cut off.
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new DOMException(`no answer in ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
    init.signal = ac.signal;
    try {
      return await fetch(url, init);
    } catch (e) {
      throw transportError(ac.signal.aborted ? ac.signal.reason : e, url, this.registry);
    } finally {
      clearTimeout(timer);
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

  private async authHeader(): Promise<Record<string, string>> {
    if (this.auth.kind === "basic") return { authorization: this.basic() };
    if (this.auth.kind === "bearer") return { authorization: `Bearer ${await this.token(this.auth)}` };
    return {};
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
    if (url.protocol !== "https:" && !(url.protocol === "http:" && this.baseUrl.startsWith("http:"))) {
      throw new KilnError("KILN_E_REGISTRY", `${this.registry} sends credentials to a non-HTTPS token realm ${a.realm}`, { hint: "kiln only sends credentials over plain HTTP to a registry it already speaks HTTP to (loopback or --insecure)" });
    }
    if (a.service) url.searchParams.set("service", a.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.opts.credentials) headers.authorization = this.basic();
    this.tokenRequests++;
    const res = await this.send("GET", url.toString(), headers, undefined, 30_000);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw credentialsError(this.ctx("token"), res.status, "from the token service");
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new KilnError("KILN_E_REGISTRY", `the token service ${url.origin}${url.pathname} answered ${res.status}`, { hint: "the registry's token service failed: retry, or check its logs" });
    }
    const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof body.token === "string" ? body.token : typeof body.access_token === "string" ? body.access_token : undefined;
    if (!token) throw new KilnError("KILN_E_REGISTRY", `the token service ${url.origin}${url.pathname} sent no token`, { hint: "the registry's token service is misconfigured" });
    // The spec's default lifetime is 60 s; renew 10 s early so a token never expires mid-request.
    const lifetime = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
    this.tokens.set(key, { token, expiresAt: now + Math.max(1, lifetime - 10) * 1000 });
    return token;
  }
}
