// The image's `user` ("1000:1000", "1000", "app", "app:staff") → numeric ids,
// resolved against the image's own /etc/passwd and /etc/group (never the
// host's). Pure; the provider reads the two files.

export type ResolvedUser = { ok: true; uid: number; gid: number } | { ok: false; reason: string; hint: string };

interface DbRow {
  name: string;
  id: number;
  /** passwd only: primary group */
  gid?: number;
}

function parseDb(text: string | undefined, kind: "passwd" | "group"): DbRow[] {
  if (!text) return [];
  const rows: DbRow[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    const id = Number(f[2]);
    if (!f[0] || !Number.isInteger(id)) continue;
    rows.push(kind === "passwd" ? { name: f[0], id, gid: Number.isInteger(Number(f[3])) ? Number(f[3]) : undefined } : { name: f[0], id });
  }
  return rows;
}

const isNumeric = (s: string) => /^[0-9]+$/.test(s);

export function resolveImageUser(user: string, passwd: string | undefined, group: string | undefined): ResolvedUser {
  const hint = 'set image.user in kiln.yaml to a non-root "UID:GID" such as "1000:1000"';
  const spec = user.trim();
  if (spec === "") return { ok: false, reason: "the image declares no user, so it would run as root", hint };
  const [u, g, extra] = spec.split(":");
  if (extra !== undefined || u === undefined || u === "") return { ok: false, reason: `image user "${user}" is not USER[:GROUP]`, hint };
  const users = parseDb(passwd, "passwd");
  const groups = parseDb(group, "group");

  let uid: number;
  let primaryGid: number | undefined;
  if (isNumeric(u)) {
    uid = Number(u);
    primaryGid = users.find((r) => r.id === uid)?.gid;
  } else {
    const row = users.find((r) => r.name === u);
    if (!row) return { ok: false, reason: `image user "${u}" is not in the image's /etc/passwd`, hint };
    uid = row.id;
    primaryGid = row.gid;
  }

  let gid: number;
  if (g === undefined || g === "") gid = primaryGid ?? uid;
  else if (isNumeric(g)) gid = Number(g);
  else {
    const row = groups.find((r) => r.name === g);
    if (!row) return { ok: false, reason: `image group "${g}" is not in the image's /etc/group`, hint };
    gid = row.id;
  }

  if (uid === 0 || gid === 0)
    return { ok: false, reason: `image user "${user}" is root; kiln runs instances only as a non-root user`, hint };
  if (uid > 0xfffffffe || gid > 0xfffffffe) return { ok: false, reason: `image user "${user}" is out of range`, hint };
  return { ok: true, uid, gid };
}
