// Who may look at the dashboard and who may act from it. The dashboard listens on TCP, where any
// local process (and a browser tab on any site) can reach it, unlike the controller's socket,
// which only its owner can open: so every request needs a session, and every action also needs
// the session's CSRF token in a header and a same-origin request.

import { randomBytes, timingSafeEqual } from "node:crypto";

export interface DashboardSession {
  id: string;
  /** sent by the page in the x-kiln-csrf header with each action; a cross-site form cannot read it */
  csrf: string;
  /** a read-only session sees everything and can change nothing */
  readOnly: boolean;
  /** who ran `kiln dashboard`: the actor of the changes made in this session (audit trail) */
  actor: string;
  expiresAt: number;
}

export interface SessionDeps {
  now: () => number;
  /** a fresh unguessable token */
  token?: () => string;
  /** how long a one-time login token may wait to be used */
  loginTtlMs?: number;
  sessionTtlMs?: number;
}

const randomToken = () => randomBytes(24).toString("base64url");

/** Bound on live logins and sessions: a flood of `kiln dashboard` calls cannot grow memory without end. */
const MAX_ENTRIES = 256;

/**
 * One-time login tokens (what `kiln dashboard` prints in the URL) and the sessions they are
 * exchanged for (an HttpOnly, SameSite=Strict cookie). A login token works once, so a URL left in
 * a shell history or a browser's history is worthless after the first visit.
 */
export class DashboardSessions {
  private readonly logins = new Map<string, { readOnly: boolean; actor: string; expiresAt: number }>();
  private readonly sessions = new Map<string, DashboardSession>();
  private readonly token: () => string;

  constructor(private readonly deps: SessionDeps) {
    this.token = deps.token ?? randomToken;
  }

  /** A one-time login token; `readOnly` sessions come out of it read-only. */
  mintLogin(readOnly: boolean, actor: string): string {
    this.prune();
    const t = this.token();
    this.logins.set(t, { readOnly, actor, expiresAt: this.deps.now() + (this.deps.loginTtlMs ?? 5 * 60_000) });
    return t;
  }

  /** The login token's session, consuming the token; undefined when unknown, used or expired. */
  exchange(login: string): DashboardSession | undefined {
    const l = this.logins.get(login);
    this.logins.delete(login);
    const now = this.deps.now();
    if (!l || l.expiresAt <= now) return undefined;
    const s: DashboardSession = { id: this.token(), csrf: this.token(), readOnly: l.readOnly, actor: l.actor, expiresAt: now + (this.deps.sessionTtlMs ?? 12 * 3600_000) };
    this.prune();
    this.sessions.set(s.id, s);
    return s;
  }

  session(id: string | undefined): DashboardSession | undefined {
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (s && s.expiresAt <= this.deps.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  private prune(): void {
    const now = this.deps.now();
    for (const [k, v] of this.logins) if (v.expiresAt <= now) this.logins.delete(k);
    for (const [k, v] of this.sessions) if (v.expiresAt <= now) this.sessions.delete(k);
    // Oldest first (Map keeps insertion order).
    for (const m of [this.logins, this.sessions] as Map<string, unknown>[]) {
      while (m.size >= MAX_ENTRIES) m.delete(m.keys().next().value as string);
    }
  }
}

const sameText = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export type ActionCheck = { ok: true } | { ok: false; status: 401 | 403; reason: string };

/**
 * May this request change something? Checked in this order, the first failure answers.
 *
 * - no (or an expired) session cookie → 401 "no dashboard session"
 * - Origin "http://evil.example" on host "127.0.0.1:8090" → 403 cross-origin
 *   (no Origin at all passes this check: a browser always sends one with a POST from script,
 *   and a non-browser client still needs the cookie and the CSRF token)
 * - Sec-Fetch-Site "cross-site" → 403 cross-origin
 * - no x-kiln-csrf header, or one that is not the session's → 403 CSRF
 * - a read-only session, or a dashboard started read-only → 403 read-only
 * - otherwise → ok
 */
export function checkAction(r: { session: DashboardSession | undefined; origin?: string; fetchSite?: string; host?: string; csrf?: string; dashboardReadOnly: boolean }): ActionCheck {
  if (!r.session) return { ok: false, status: 401, reason: "no dashboard session: open the URL `kiln dashboard` prints" };
  if (r.origin !== undefined && r.origin !== `http://${r.host ?? ""}`) return { ok: false, status: 403, reason: `cross-origin request from ${r.origin} refused` };
  if (r.fetchSite === "cross-site") return { ok: false, status: 403, reason: "cross-site request refused" };
  if (r.csrf === undefined || !sameText(r.csrf, r.session.csrf)) return { ok: false, status: 403, reason: "missing or wrong CSRF token (x-kiln-csrf)" };
  if (r.dashboardReadOnly || r.session.readOnly) return { ok: false, status: 403, reason: "this dashboard session is read-only" };
  return { ok: true };
}

/** The session cookie's value in a Cookie header, if any. */
export function sessionCookie(header: string | undefined): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === COOKIE) return v.join("=");
  }
  return undefined;
}

export const COOKIE = "kiln_dashboard";

export function setCookieHeader(s: DashboardSession, now: number): string {
  return `${COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.max(0, Math.floor((s.expiresAt - now) / 1000))}`;
}
