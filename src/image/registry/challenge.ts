// WWW-Authenticate challenges (RFC 7235) as registries send them:
//
//   Basic realm="Registry Realm"
//     → [{ scheme: "basic", params: { realm: "Registry Realm" } }]
//   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:hello:pull"
//     → [{ scheme: "bearer", params: { realm, service, scope } }]
//   Bearer realm="https://a/t", error="insufficient_scope", Basic realm="x"
//     → two challenges (a header may offer several; params attach to the last scheme)
//
// Scheme names are lowercased (they are case-insensitive); parameter names too.
// Quoted values may hold commas, spaces and \" escapes.

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (chars: string) => {
    while (i < n && chars.includes(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && TOKEN.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skip(" \t,");
    if (i >= n) break;
    const name = token();
    if (name === "") {
      i++; // a stray character: step over it rather than loop forever
      continue;
    }
    const save = i;
    skip(" \t");
    if (header[i] === "=" && out.length > 0 && header[i + 1] !== "=") {
      i++;
      skip(" \t");
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // closing quote
      } else {
        const start = i;
        while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
        value = header.slice(start, i);
      }
      out[out.length - 1]!.params[name.toLowerCase()] = value;
      continue;
    }
    i = save;
    out.push({ scheme: name.toLowerCase(), params: {} });
    // A token68 credential ("Negotiate abc==") belongs to the scheme: skip it.
    skip(" \t");
    const look = i;
    const t68 = token();
    let j = i;
    while (j < n && header[j] === "=") j++;
    const after = header.slice(j).trimStart();
    if (t68 !== "" && j > i && (after === "" || after.startsWith(","))) i = j;
    else i = look;
  }
  return out;
}

/** The challenge kiln answers: Bearer if offered (it scopes access), else Basic. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer" && c.params.realm) ?? challenges.find((c) => c.scheme === "basic");
}
