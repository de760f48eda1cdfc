import { describe, expect, it } from 'vitest';
import { parseLabelSelector } from './selector.ts';

const W = 'reconcile.fluxcd.io/watch';

describe('parseLabelSelector', () => {
  it.each<[string, Record<string, string>, boolean]>([
    [`${W}=Enabled`, { [W]: 'Enabled' }, true],
    [`${W}=Enabled`, { [W]: 'Disabled' }, false],
    [`${W}=Enabled`, {}, false],
    [`${W}==Enabled`, { [W]: 'Enabled' }, true],
    ['owner!=helm', {}, true],
    ['owner!=helm', { owner: 'helm' }, false],
    ['owner!=helm', { owner: 'me' }, true],
    ['env in (prod, staging)', { env: 'staging' }, true],
    ['env in (prod,staging)', { env: 'dev' }, false],
    ['env in (prod,staging)', {}, false],
    ['env notin (prod)', {}, true],
    ['env notin (prod)', { env: 'prod' }, false],
    ['team', { team: '' }, true],
    ['team', {}, false],
    ['!team', {}, true],
    ['!team', { team: 'a' }, false],
    ['tier>2', { tier: '3' }, true],
    ['tier>2', { tier: 'x' }, false],
    ['tier<2', { tier: '1' }, true],
    [`${W}=Enabled,env in (a,b),!skip`, { [W]: 'Enabled', env: 'a' }, true],
    [`${W}=Enabled,env in (a,b),!skip`, { [W]: 'Enabled', env: 'a', skip: 'y' }, false],
    // helm-controller's "match nothing" recipe for a v1.4.x without the DisableConfigWatchers gate.
    [`${W}=Enabled,${W}!=Enabled`, { [W]: 'Enabled' }, false],
    ['', { anything: 'x' }, true],
  ])('%s on %j: %s', (selector, labels, expected) => {
    const p = parseLabelSelector(selector);
    expect(p.ok).toBe(true);
    if (p.ok) expect(p.matches(labels)).toBe(expected);
  });

  it.each(['=x', 'a in b', 'a in (b', 'a ~ b', 'a=b=c', '!a=b', 'a in (x y)'])('rejects %s', (selector) => {
    expect(parseLabelSelector(selector).ok).toBe(false);
  });
});
