// The PromQL reading behind the metric-coverage test finds exactly the metrics an expression selects.
import { describe, expect, it } from 'vitest';
import {
  dashboardExpressions,
  exposedFamilies,
  isExposed,
  metricNames,
  ruleExpressions,
} from '../support/metrics-usage.ts';

describe('metricNames', () => {
  it.each([
    [
      'rate with matchers and a Grafana range',
      'sum by (reason) (rate(a_total{namespace=~"$namespace"}[$__rate_interval]))',
      ['a_total'],
    ],
    ['histogram quantile', 'histogram_quantile(0.99, sum by (le) (rate(h_bucket{x="y"}[5m])))', ['h_bucket']],
    ['arithmetic with time() and numbers', '(g > 0) - time() < 7 * 24 * 3600', ['g']],
    ['or with absent()', 'max by (namespace) (l) < 1 or absent(l)', ['l']],
    ['vector matching and offset', 'a / on(pod) group_left(node) b offset 5m', ['a', 'b']],
    ['group_left without a label list', 'a * on (pod) group_left b', ['a', 'b']],
    ['__name__ matcher', '{__name__="x_total", job="y"}', ['x_total']],
    ['a brace inside a string', 'sum(rate(a{b="c}) by (d"}[1m])) without (e)', ['a']],
    ['bool modifier and unless', 'count(up == bool 1) unless c', ['up', 'c']],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
    ['Grafana ${var} and $__range', 'increase(a{ns=~"${namespace:regex}"}[$__range])', ['a']],
    ['durations with several units', 'max_over_time(a[1h30m:5m])', ['a']],
    ['scientific numbers', 'a > 1e3 and b < 0x10', ['a', 'b']],
  ])('%s', (_name, expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });

  it('refuses an unbalanced expression instead of guessing', () => {
    expect(() => metricNames('sum(rate(a[5m])')).toThrow(/unbalanced/);
  });
});

describe('expressions of dashboards and rules', () => {
  it('reads every target, also of panels nested in rows', () => {
    const dashboard = {
      panels: [
        { title: 'A', targets: [{ expr: 'a' }, { expr: 'b' }] },
        { type: 'row', title: 'R', panels: [{ title: 'C', targets: [{ expr: 'c' }] }] },
      ],
    };
    expect(dashboardExpressions(dashboard).map((e) => e.expr)).toEqual(['a', 'b', 'c']);
  });

  it('reads every rule of every group of a PrometheusRule', () => {
    const rule = {
      spec: { groups: [{ rules: [{ alert: 'A', expr: 'a > 0' }] }, { rules: [{ record: 'r', expr: 'b' }] }] },
    };
    expect(ruleExpressions(rule)).toEqual([
      { where: 'rule A', expr: 'a > 0' },
      { where: 'rule r', expr: 'b' },
    ]);
  });
});

describe('isExposed', () => {
  const families = exposedFamilies(
    [
      '# HELP c_total A counter.',
      '# TYPE c_total counter',
      '# TYPE h histogram',
      'h_bucket{le="1"} 0',
      '# TYPE s summary',
      '# TYPE g gauge',
      'g 1',
    ].join('\n'),
  );
  it.each([
    ['c_total', true],
    ['h_bucket', true],
    ['h_sum', true],
    ['h_count', true],
    ['h', true],
    ['s_count', true],
    ['s_bucket', false],
    ['g', true],
    ['g_count', false],
    ['c', false],
    ['missing', false],
  ])('%s: %s', (name, exposed) => {
    expect(isExposed(name, families)).toBe(exposed);
  });
});
