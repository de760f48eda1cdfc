// A fixed digest key for tests that run the values store in-process (the real process loads the cluster's
// key from its Secret: src/values/key-secret.ts).
import type { KubeClient } from '../../src/kube/client.ts';
import { objectPath, Secrets } from '../../src/kube/resources.ts';
import { type DigestKeys, digestKey } from '../../src/values/digest.ts';
import { DIGEST_KEY_SECRET, parseDigestKeySecret } from '../../src/values/key-secret.ts';

export const TEST_DIGEST_KEYS: DigestKeys = {
  current: digestKey(Buffer.from('helmrelease-autopilot test digest key, 32+ bytes long')),
};

/** What CachesOptions.digestKeys wants. */
export const testDigestKeys = (): DigestKeys => TEST_DIGEST_KEYS;

/** The digest keys a real operator process loaded (or created) in `namespace`, read as an admin. */
export async function clusterDigestKeys(client: KubeClient, namespace: string): Promise<DigestKeys> {
  return parseDigestKeySecret(await client.get(objectPath(Secrets, namespace, DIGEST_KEY_SECRET)));
}
