// Prometheus text scrapes parsed by a library (parse-prometheus-text-format, prom2json's
// shape), flattened into samples so tests can sum and filter them.

import { createRequire } from "node:module";

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const parse = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

export interface Sample {
  /** the family name; a histogram's buckets are `<name>_bucket` with an `le` label, plus `_sum` and `_count` */
  name: string;
  labels: Record<string, string>;
  value: number;
}

const num = (v: string | undefined) => (v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v));

/**
 * Parse a scrape; throws when the text is not the Prometheus format. Histograms and summaries
 * are read as their plain series (`_bucket{le}`, `_sum`, `_count`): the library folds every
 * labelled series of a histogram family into one object and loses their labels and counts.
 */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const f of parse(text.replace(/^# TYPE (\S+) (histogram|summary)$/gm, "# TYPE $1 untyped"))) {
    for (const m of f.metrics) {
      const labels = m.labels ?? {};
      if (m.buckets) {
        for (const [le, v] of Object.entries(m.buckets)) out.push({ name: `${f.name}_bucket`, labels: { ...labels, le }, value: num(v) });
        out.push({ name: `${f.name}_count`, labels, value: num(m.count) });
        out.push({ name: `${f.name}_sum`, labels, value: num(m.sum) });
      } else out.push({ name: f.name, labels, value: num(m.value) });
    }
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}
