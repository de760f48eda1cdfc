import { describe, expect, it } from 'vitest';
import type { KubeClient } from '../kube/client.ts';
import { createLogger } from '../log.ts';
import { type DigestKeys, digestKey } from './digest.ts';
import { DigestKeyLoader, parseDigestKeySecret } from './key-secret.ts';

const b64 = (n: number, fill: number) => Buffer.alloc(n, fill).toString('base64');
const logger = createLogger('silent');

describe('parseDigestKeySecret', () => {
  it.each<[string, unknown, string | RegExp]>([
    ['current only', { data: { current: b64(32, 1) } }, 'current'],
    ['current and previous', { data: { current: b64(32, 1), previous: b64(32, 2) } }, 'current+previous'],
    ['no data.current', { data: { previous: b64(32, 2) } }, /no data.current/],
    ['a short key', { data: { current: b64(16, 1) } }, /at least 32 bytes/],
    ['not a Secret', 'nonsense', /no data.current/],
  ])('%s', (_, raw, expected) => {
    if (expected instanceof RegExp) {
      expect(() => parseDigestKeySecret(raw)).toThrow(expected);
      return;
    }
    const keys = parseDigestKeySecret(raw);
    expect(keys.current.id).toBe(digestKey(Buffer.alloc(32, 1)).id);
    expect(keys.previous?.id).toBe(expected === 'current' ? undefined : digestKey(Buffer.alloc(32, 2)).id);
  });

  it("reads the installation time from the Secret's creationTimestamp (none when absent or malformed)", () => {
    const at = (creationTimestamp?: string) =>
      parseDigestKeySecret({ metadata: { creationTimestamp }, data: { current: b64(32, 1) } }).since;
    expect(at('2026-12-01T10:00:00Z')).toBe(Date.parse('2026-12-01T10:00:00Z'));
    expect(at(undefined)).toBeUndefined();
    expect(at('yesterday')).toBeUndefined();
  });
});

describe('DigestKeyLoader', () => {
  const KEYS: DigestKeys = { current: digestKey(Buffer.alloc(32, 3)) };
  const client = {} as KubeClient;

  it('retries until the load succeeds, then answers with the keys', async () => {
    let calls = 0;
    const loader = new DigestKeyLoader({
      client,
      namespace: 'ns',
      logger,
      retryMs: 1,
      load: async () => {
        if (++calls < 3) throw new Error('not yet');
        return KEYS;
      },
    });
    expect(loader.loaded()).toBe(false);
    loader.start();
    expect(await loader.whenLoaded()).toBe(KEYS);
    expect(loader.current()).toBe(KEYS);
    expect(calls).toBe(3);
  });

  it('stopped before it loaded: whenLoaded answers undefined and it stops retrying', async () => {
    let calls = 0;
    const loader = new DigestKeyLoader({
      client,
      namespace: 'ns',
      logger,
      retryMs: 5,
      load: async () => {
        calls++;
        throw new Error('never');
      },
    });
    loader.start();
    await new Promise((r) => setTimeout(r, 20));
    loader.stop();
    expect(await loader.whenLoaded()).toBeUndefined();
    const after = calls;
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toBe(after);
    expect(loader.loaded()).toBe(false);
  });
});
