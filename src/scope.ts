// Which namespaces the reconcilers act in: the one --watch-namespace names, or all. The reconcilers' wiring
// (cmd/helmrelease-autopilot/roles.ts) and explain both ask this function.
import type { FlagValues } from './config.ts';

export function reconcilerScope(config: Pick<FlagValues, 'watch-namespace'>): (namespace: string) => boolean {
  const only = config['watch-namespace'];
  return only ? (namespace) => namespace === only : () => true;
}
