import { describe, expect, it } from 'vitest';
import type { Explanation } from './explain.ts';
import { humanDuration, needsAttention, renderExplanation, renderTable } from './render.ts';

describe('humanDuration', () => {
  it.each([
    [0, '0s'],
    [400, '0s'],
    [1_500, '2s'],
    [59_000, '59s'],
    [60_000, '1m'],
    [80_000, '1m20s'],
    [3_600_000, '1h'],
    [3_661_000, '1h1m1s'],
    [-5_000, '0s'],
  ])('%i ms is %s', (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
});

const NOW = Date.parse('2026-12-01T12:00:00Z');

function explanation(over: Partial<Explanation> = {}): Explanation {
  return {
    release: { namespace: 'apps', name: 'web', generation: 2, suspended: false, managed: true },
    operator: { source: 'defaults', inScope: true, scope: 'all namespaces', settings: ['--retries=true'] },
    sources: [
      {
        kind: 'ConfigMap',
        name: 'web-values',
        valuesKey: 'values.yaml',
        optional: false,
        present: true,
        keyPresent: true,
        watchedByFlux: false,
      },
    ],
    digest: { stamped: `sha256:${'a'.repeat(64)}`, now: `sha256:${'b'.repeat(64)}` },
    trigger: {
      verdict: 'due',
      action: 'trigger',
      reason: 'values-changed',
      writes: ['reconcile.fluxcd.io/requestedAt'],
    },
    links: [],
    refusedLinks: [],
    retry: {
      status: 'none',
      verdict: 'not-failed',
      reason: 'no failed install or upgrade',
      action: 'none',
      maxAttempts: 5,
    },
    flux: {
      conditions: [],
      requests: {},
      handled: {},
      history: [],
      failures: { failures: 0, installFailures: 0, upgradeFailures: 0 },
    },
    events: [],
    notes: [],
    ...over,
  };
}

describe('renderExplanation', () => {
  it('says what the decisions said, digests shortened, and what it could not read', () => {
    const text = renderExplanation(
      explanation({
        retry: {
          status: 'pending',
          verdict: 'retry',
          reason: 'UpgradeFailed matches /context deadline exceeded/',
          action: 'wait',
          attempts: 1,
          maxAttempts: 5,
          episode: '0123456789abcdef',
          nextRetryAt: '2026-12-01T12:01:20.000Z',
        },
        notes: ['no access to Secret apps/creds'],
      }),
      NOW,
    );
    expect(text).toContain(
      'Trigger:   DUE — trigger: values-changed (writes reconcile.fluxcd.io/requestedAt)',
    );
    expect(text).toContain(`  stamped  ${'a'.repeat(12)}\n  now      ${'b'.repeat(12)}  (differs)`);
    expect(text).toContain('Retry:     PENDING — retry: UpgradeFailed matches /context deadline exceeded/');
    expect(text).toContain(
      '1/5 retries made; next retry 2026-12-01T12:01:20.000Z (in 1m20s); episode 0123456789abcdef',
    );
    expect(text).toContain('Could not read:\n  - no access to Secret apps/creds');
  });

  it('a digest that cannot be computed is said so, never shown as a value', () => {
    const text = renderExplanation(
      explanation({
        digest: { stamped: `sha256:${'a'.repeat(64)}`, cannotCompute: 'no access to Secret apps/creds' },
        trigger: { verdict: 'unknown', reason: 'cannot compute: no access to Secret apps/creds' },
      }),
      NOW,
    );
    expect(text).toContain('  now      cannot compute: no access to Secret apps/creds');
    expect(text).toContain('Trigger:   UNKNOWN — cannot compute: no access to Secret apps/creds');
  });
});

describe('needsAttention and the --all table', () => {
  it.each([
    ['due', 'none', true],
    ['held', 'none', true],
    ['unknown', 'none', true],
    ['not-needed', 'pending', true],
    ['not-needed', 'due', true],
    ['not-needed', 'exhausted', true],
    ['not-needed', 'none', false],
    ['not-needed', 'off', false],
    ['out-of-scope', 'out-of-scope', false],
  ] as const)('trigger %s, retry %s: %s', (verdict, status, attention) => {
    const e = explanation({
      trigger: { verdict, reason: 'r' },
      retry: { status, reason: 'why', maxAttempts: 5 },
    });
    expect(needsAttention(e)).toBe(attention);
  });

  it('lists only the releases that need attention, with when their next retry is', () => {
    const quiet = explanation({ trigger: { verdict: 'not-needed', reason: 'unchanged' } });
    const waiting = explanation({
      release: { ...quiet.release, name: 'api' },
      trigger: { verdict: 'not-needed', reason: 'unchanged' },
      retry: {
        status: 'pending',
        reason: 'InstallFailed matches /i\\/o timeout/',
        maxAttempts: 5,
        nextRetryAt: '2026-12-01T12:00:30Z',
      },
    });
    const lines = renderTable([quiet, waiting], NOW).trim().split('\n');
    expect(lines).toEqual([
      'NAMESPACE  NAME  TRIGGER     RETRY    NEXT RETRY  WHY',
      'apps       api   not-needed  pending  in 30s      retry: InstallFailed matches /i\\/o timeout/',
      '(1 of 2 releases need attention)',
    ]);
    expect(renderTable([quiet], NOW)).toBe('No release needs attention (1 examined).\n');
  });
});
