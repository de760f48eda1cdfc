// Kubernetes label selectors in their string form (k8s.io/apimachinery/pkg/labels.Parse), parsed once into a
// matcher: requirements separated by commas, all of which must hold —
//   key  !key  key=value  key==value  key!=value  key in (a,b)  key notin (a,b)  key>1  key<1
// `!=` and `notin` also match objects without the key, as in Kubernetes.
export type LabelMatcher = (labels: Readonly<Record<string, string>>) => boolean;

export type ParsedSelector = { ok: true; matches: LabelMatcher } | { ok: false; error: string };

type Requirement = (labels: Readonly<Record<string, string>>) => boolean;

const KEY = String.raw`(?:[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?`;
const VALUE = '(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?';
const VALUE_ONLY = new RegExp(`^${VALUE}$`);
const EXISTS = new RegExp(`^(!?)\\s*(${KEY})$`);
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^()]*)\\)$`);
const NUMERIC = new RegExp(`^(${KEY})\\s*([<>])\\s*(-?\\d+)$`);

/** Parses a label selector; the empty string selects everything (as in Kubernetes). */
export function parseLabelSelector(raw: string): ParsedSelector {
  const requirements: Requirement[] = [];
  for (const part of splitTopLevel(raw.trim())) {
    const r = parseRequirement(part.trim());
    if (!r) return { ok: false, error: `"${raw}" is not a label selector (at "${part.trim()}")` };
    requirements.push(r);
  }
  return { ok: true, matches: (labels) => requirements.every((r) => r(labels)) };
}

function parseRequirement(s: string): Requirement | undefined {
  let m = EQUALITY.exec(s);
  if (m) {
    const [, key, op, value] = m as unknown as [string, string, string, string];
    return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  m = SET.exec(s);
  if (m) {
    const [, key, op, list] = m as unknown as [string, string, string, string];
    const values = list.split(',').map((v) => v.trim());
    if (values.some((v) => !VALUE_ONLY.test(v))) return undefined;
    const set = new Set(values);
    return op === 'in' ? (l) => l[key] !== undefined && set.has(l[key]) : (l) => !set.has(l[key] ?? '\0');
  }
  m = NUMERIC.exec(s);
  if (m) {
    const [, key, op, n] = m as unknown as [string, string, string, string];
    const bound = Number(n);
    return (l) => {
      const v = l[key];
      if (v === undefined || !/^-?\d+$/.test(v)) return false;
      return op === '>' ? Number(v) > bound : Number(v) < bound;
    };
  }
  m = EXISTS.exec(s);
  if (m) {
    const [, not, key] = m as unknown as [string, string, string];
    return not ? (l) => l[key] === undefined : (l) => l[key] !== undefined;
  }
  return undefined;
}

/** Splits on commas outside parentheses ("a in (x,y),b" -> ["a in (x,y)", "b"]); "" -> []. */
function splitTopLevel(s: string): string[] {
  if (s === '') return [];
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    else if (s[i] === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}
