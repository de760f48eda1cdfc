// The Grafana dashboard (manifests/components/dashboard/dashboard.json) shows every topic the issue asks for,
// each from the metric that measures it, on a layout Grafana can place, filtered by the namespace variable.
// (test/integration/metrics-coverage.test.ts proves the metrics exist on a running operator.)
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { array, isObject, type JsonObject, str } from '../../src/util/narrow.ts';
import { DASHBOARD_FILE, dashboardExpressions, metricNames } from '../support/metrics-usage.ts';

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as JsonObject;
const all = array(dashboard.panels).filter(isObject);
const panels = all.filter((p) => p.type !== 'row');
const exprsOf = (p: JsonObject) =>
  array(p.targets)
    .filter(isObject)
    .map((t) => str(t.expr) ?? '');

const TOPICS: [topic: string, metric: string, by?: string][] = [
  ['triggers', 'helmrelease_autopilot_triggers_total', 'reason'],
  ['backfills', 'helmrelease_autopilot_trigger_backfills_total', 'reason'],
  ['skips by reason', 'helmrelease_autopilot_trigger_skips_total', 'reason'],
  ['retries by outcome', 'helmrelease_autopilot_retries_total', 'outcome'],
  ['backing off', 'helmrelease_autopilot_retry_backing_off'],
  ['exhausted', 'helmrelease_autopilot_retry_exhausted'],
  ['queue depth', 'helmrelease_autopilot_trigger_queue_depth'],
  ['trigger latency', 'helmrelease_autopilot_trigger_latency_seconds_bucket', 'le'],
  ['webhook latency', 'helmrelease_autopilot_webhook_admission_duration_seconds_bucket', 'le'],
  ['webhook errors', 'helmrelease_autopilot_webhook_errors_total', 'type'],
  ['trigger errors', 'helmrelease_autopilot_trigger_errors_total', 'type'],
  ['certificate expiry', 'helmrelease_autopilot_webhook_certificate_expiry_timestamp_seconds'],
  ['leader', 'helmrelease_autopilot_leader', 'pod'],
];

describe('the Grafana dashboard', () => {
  it.each(TOPICS)('has a panel for %s, from %s', (_topic, metric, by) => {
    const panel = panels.find((p) => exprsOf(p).some((e) => metricNames(e).includes(metric)));
    expect(panel, `no panel uses ${metric}`).toBeDefined();
    if (by) expect(exprsOf(panel as JsonObject).join(' ')).toMatch(new RegExp(`by \\(${by}\\)`));
  });

  it('every panel queries the chosen data source, with unique ids and refIds', () => {
    const ids = all.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
      expect(p.datasource, str(p.title)).toEqual({ type: 'prometheus', uid: '${datasource}' });
      const targets = array(p.targets).filter(isObject);
      expect(targets.length, str(p.title)).toBeGreaterThan(0);
      const refIds = targets.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of targets) expect(t.datasource).toEqual(p.datasource);
    }
  });

  it('every series of ours is filtered by the namespace variable', () => {
    for (const { where, expr } of dashboardExpressions(dashboard)) {
      for (const name of metricNames(expr)) {
        expect(expr, where).toContain(`${name}{namespace=~"$namespace"}`);
      }
    }
    const vars = array(isObject(dashboard.templating) ? dashboard.templating.list : []).filter(isObject);
    expect(vars.map((v) => v.name)).toEqual(['datasource', 'namespace']);
  });

  it('panels fit the 24-column grid without overlapping', () => {
    const boxes = all.map((p) => {
      const g = isObject(p.gridPos) ? p.gridPos : {};
      return { title: str(p.title), x: Number(g.x), y: Number(g.y), w: Number(g.w), h: Number(g.h) };
    });
    for (const b of boxes) {
      expect(b.x + b.w, b.title).toBeLessThanOrEqual(24);
      expect(b.h, b.title).toBeGreaterThan(0);
    }
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
        expect(apart, `${a.title} overlaps ${b.title}`).toBe(true);
      }
    }
  });

  it('has a stable uid and title, so a re-import replaces it', () => {
    expect(dashboard).toMatchObject({ uid: 'helmrelease-autopilot', title: 'helmrelease-autopilot' });
  });
});
