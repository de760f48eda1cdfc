// Which metrics the shipped dashboard and alerts use, and which of them a process's /metrics exposes.
// The PromQL reading is a small tokenizer, enough for the expressions we write: it skips strings, label
// matchers, range selectors, Grafana variables, numbers and durations, function and aggregation names,
// keywords and their label lists; what is left is a metric name (also `{__name__="..."}`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { array, isObject, str } from '../../src/util/narrow.ts';

const ROOT = join(import.meta.dirname, '..', '..');
export const DASHBOARD_FILE = join(ROOT, 'manifests/components/dashboard/dashboard.json');
export const RULES_FILE = join(ROOT, 'manifests/components/prometheusrule/prometheusrule.yaml');

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
]);
/** Aggregation operators: `sum by (x) (...)` puts a keyword, not a parenthesis, after the name. */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
/** Keywords followed by a parenthesized label list (optional for group_left/group_right). */
const LABEL_LIST = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;

/** Metric names a PromQL expression selects, in order of first use. */
export function metricNames(expr: string): string[] {
  const names: string[] = [];
  const add = (n: string) => {
    if (!names.includes(n)) names.push(n);
  };
  let i = 0;
  let depth = 0;
  const skipSpace = () => {
    while (i < expr.length && /\s/.test(expr[i] as string)) i++;
  };
  /** Index after the bracket that closes the one at `from`, skipping strings inside. */
  const closing = (from: number): number => {
    const open = expr[from] as string;
    const close = open === '(' ? ')' : open === '{' ? '}' : ']';
    let depth = 0;
    for (let j = from; j < expr.length; j++) {
      const c = expr[j] as string;
      if (c === '"' || c === "'" || c === '`') j = endOfString(expr, j) - 1;
      else if (c === open) depth++;
      else if (c === close && --depth === 0) return j + 1;
    }
    throw new Error(`unbalanced ${open} in PromQL: ${expr}`);
  };
  while (i < expr.length) {
    const c = expr[i] as string;
    if (c === '"' || c === "'" || c === '`') {
      i = endOfString(expr, i);
    } else if (c === '{') {
      const end = closing(i);
      const byName = /__name__\s*=\s*"([^"]+)"/.exec(expr.slice(i, end));
      if (byName) add(byName[1] as string);
      i = end;
    } else if (c === '[') {
      i = closing(i);
    } else if (c === '$') {
      // Grafana variables: $name, ${name}, ${name:format}.
      i++;
      if (expr[i] === '{') i = closing(i);
      else while (i < expr.length && /\w/.test(expr[i] as string)) i++;
    } else if (/[0-9.]/.test(c)) {
      // Numbers, hex and durations (5m, 1h30m, 1e3).
      while (i < expr.length && /[0-9a-zA-Z_.]/.test(expr[i] as string)) i++;
    } else if (/[a-zA-Z_:]/.test(c)) {
      IDENT.lastIndex = i;
      const ident = (IDENT.exec(expr) as RegExpExecArray)[0];
      i += ident.length;
      skipSpace();
      if (LABEL_LIST.has(ident)) {
        if (expr[i] === '(') i = closing(i);
      } else if (!KEYWORDS.has(ident) && !AGGREGATIONS.has(ident) && expr[i] !== '(') {
        add(ident);
      }
    } else {
      if (c === '(') depth++;
      else if (c === ')' && --depth < 0) throw new Error(`unbalanced ) in PromQL: ${expr}`);
      i++;
    }
  }
  if (depth !== 0) throw new Error(`unbalanced ( in PromQL: ${expr}`);
  return names;
}

function endOfString(s: string, from: number): number {
  const quote = s[from];
  for (let j = from + 1; j < s.length; j++) {
    if (s[j] === '\\' && quote !== '`') j++;
    else if (s[j] === quote) return j + 1;
  }
  throw new Error(`unterminated string in PromQL: ${s}`);
}

/** Every target expression of a Grafana dashboard (panels, and panels nested in collapsed rows), by panel title. */
export function dashboardExpressions(dashboard: unknown): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: unknown) => {
    for (const p of array(panels).filter(isObject)) {
      for (const t of array(p.targets).filter(isObject)) {
        const expr = str(t.expr);
        if (expr) out.push({ where: `dashboard panel "${str(p.title)}"`, expr });
      }
      walk(p.panels);
    }
  };
  walk(isObject(dashboard) ? dashboard.panels : undefined);
  return out;
}

/** Every rule expression of a PrometheusRule object (or of a rule file's `groups`), by alert or record name. */
export function ruleExpressions(rule: unknown): { where: string; expr: string }[] {
  const spec = isObject(rule) && isObject(rule.spec) ? rule.spec : rule;
  const groups = isObject(spec) ? array(spec.groups).filter(isObject) : [];
  return groups.flatMap((g) =>
    array(g.rules)
      .filter(isObject)
      .map((r) => ({ where: `rule ${str(r.alert) ?? str(r.record)}`, expr: str(r.expr) ?? '' })),
  );
}

/** Metric name → where the shipped dashboard and alerts use it. */
export function shippedMetricUses(): Map<string, string[]> {
  const uses = new Map<string, string[]>();
  const exprs = [
    ...dashboardExpressions(JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'))),
    ...ruleExpressions(parse(readFileSync(RULES_FILE, 'utf8'))),
  ];
  for (const { where, expr } of exprs) {
    for (const name of metricNames(expr)) uses.set(name, [...(uses.get(name) ?? []), where]);
  }
  return uses;
}

/** Metric families of a Prometheus text exposition, by name, with their types (from `# TYPE` lines). */
export function exposedFamilies(text: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(m[1] as string, m[2] as string);
  return families;
}

const SERIES_SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

/** Whether a series name is exposed: the family itself, or a histogram's/summary's _bucket, _sum or _count. */
export function isExposed(name: string, families: Map<string, string>): boolean {
  if (families.has(name)) return true;
  return Object.entries(SERIES_SUFFIXES).some(([type, suffixes]) =>
    suffixes.some((s) => name.endsWith(s) && families.get(name.slice(0, -s.length)) === type),
  );
}
