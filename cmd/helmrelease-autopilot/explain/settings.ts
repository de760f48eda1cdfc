// The operator's configuration as explain needs it (retry limits and patterns, --force, --watch-namespace,
// ...): read from the operator's Deployment (its container's args and literal AUTOPILOT_* variables, parsed by
// the operator's own parseConfig), then the operator flags given to explain on top. Without access to the
// Deployment, the defaults and the given flags, with a note saying so.
import { type Config, parseConfig } from '../../../src/config.ts';
import type { KubeClient } from '../../../src/kube/client.ts';
import { errorMessage } from '../../../src/util/errors.ts';
import { array, isObject, type JsonObject, str } from '../../../src/util/narrow.ts';
import { getObject } from './reads.ts';

export interface OperatorSettings {
  config: Config;
  /** Where the configuration came from, e.g. "Deployment helmrelease-autopilot/helmrelease-autopilot". */
  source: string;
  /** Why the Deployment was not used, when it was not. */
  note?: string;
}

export interface SettingsOptions {
  /** The operator's namespace and Deployment; an empty deployment name reads none. */
  namespace: string;
  deployment: string;
  /** Operator flags given to explain ("--retry-max-attempts=3"): they win over the Deployment's. */
  flags: readonly string[];
}

export async function readOperatorSettings(
  client: KubeClient,
  o: SettingsOptions,
): Promise<OperatorSettings> {
  const given = o.flags.length > 0 ? ` and ${o.flags.join(' ')}` : '';
  if (!o.deployment) {
    return { config: parseConfig(o.flags, {}), source: `defaults${given}` };
  }
  const name = `${o.namespace}/${o.deployment}`;
  const read = await getObject(client, `/apis/apps/v1/namespaces/${o.namespace}/deployments/${o.deployment}`);
  const fallback = (why: string): OperatorSettings => ({
    config: parseConfig(o.flags, {}),
    source: `defaults${given}`,
    note: `${why}: the operator's flags are unknown, explain assumes the defaults${given}`,
  });
  if (read.state === 'missing') return fallback(`no Deployment ${name}`);
  if (read.state !== 'found')
    return fallback(read.state === 'forbidden' ? `no access to Deployment ${name}` : read.message);
  const container = operatorContainer(read.value);
  if (!container) return fallback(`Deployment ${name} has no containers`);
  try {
    return {
      config: parseConfig([...container.args, ...o.flags], container.env),
      source: `Deployment ${name}${given}`,
    };
  } catch (err) {
    return fallback(`the args of Deployment ${name} do not parse (${errorMessage(err)})`);
  }
}

/** The container named "operator" (the shipped name), else the first one: its args and literal env values. */
function operatorContainer(
  deployment: JsonObject,
): { args: string[]; env: Record<string, string> } | undefined {
  const spec = isObject(deployment.spec) ? deployment.spec : {};
  const template = isObject(spec.template) ? spec.template : {};
  const pod = isObject(template.spec) ? template.spec : {};
  const containers = array(pod.containers).filter(isObject);
  const c = containers.find((x) => x.name === 'operator') ?? containers[0];
  if (!c) return undefined;
  const env: Record<string, string> = {};
  for (const e of array(c.env).filter(isObject)) {
    const name = str(e.name);
    const value = str(e.value);
    if (name && value !== undefined) env[name] = value;
  }
  return { args: array(c.args).map(String), env };
}
