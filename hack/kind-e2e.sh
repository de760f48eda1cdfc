#!/usr/bin/env bash
# Runs the e2e specs on a kind cluster, for users with Docker: creates the cluster, installs cert-manager
# and Flux from their release manifests, builds the image and loads it into the nodes, installs the
# cert-manager overlay (with the specs' timing flags), runs `npm run test:e2e` against the cluster, and
# deletes the cluster on exit.
#
# Needs docker, kind, kubectl, go (to build kustomize, or KUSTOMIZE=/path) and `npm ci` done.
#   KIND_CLUSTER_NAME   cluster name (default helmrelease-autopilot-e2e)
#   KEEP_CLUSTER=1      keep the cluster (and print its kubeconfig) instead of deleting it
#   E2E_ARTIFACT_HOST   address pods reach this machine at (default: the kind network's IPv4 gateway)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/versions.env
source hack/versions.env

cluster=${KIND_CLUSTER_NAME:-helmrelease-autopilot-e2e}
image_name=helmrelease-autopilot
image_tag=e2e
cert_manager_url="https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
flux_url="https://github.com/fluxcd/flux2/releases/download/${FLUX_VERSION}/install.yaml"
node=node_modules/.bin/node

for tool in docker kind kubectl "$node"; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
kustomize=$(bash hack/build-kustomize.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-kind.XXXXXX")
export KUBECONFIG="$work/kubeconfig"

cleanup() {
  if [[ "${KEEP_CLUSTER:-}" == 1 ]]; then
    echo "kept kind cluster $cluster: KUBECONFIG=$KUBECONFIG" >&2
  else
    kind delete cluster --name "$cluster" >&2 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Retries a command (CRs applied right after their operator starts can meet a webhook that is not ready).
retry() {
  local n
  for n in 1 2 3 4 5 6 7 8 9 10; do
    "$@" && return 0
    echo "attempt $n of '$*' failed: retrying in 6 s" >&2
    sleep 6
  done
  return 1
}

kind create cluster --name "$cluster" --wait 120s

kubectl apply --server-side -f "$cert_manager_url"
kubectl apply --server-side -f "$flux_url"
# The specs serve chart artifacts themselves (they write HelmChart status): source-controller would
# overwrite it, so it does not run.
kubectl -n flux-system scale deployment source-controller --replicas=0
kubectl -n cert-manager wait deployment --all --for=condition=Available --timeout=300s
kubectl -n flux-system wait deployment helm-controller --for=condition=Available --timeout=300s

docker build -t "$image_name:$image_tag" .
kind load docker-image "$image_name:$image_tag" --name "$cluster"

# The cert-manager overlay with the image just built and the specs' timing flags (one list, in TypeScript).
"$node" --input-type=module -e '
  const [overlay, image, tag] = process.argv.slice(1);
  const { E2E_OPERATOR_TUNING } = await import("./test/e2e/support/env.ts");
  const add = E2E_OPERATOR_TUNING.map((value) => ({ op: "add", path: "/spec/template/spec/containers/0/args/-", value }));
  console.log(JSON.stringify({
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    resources: [overlay],
    images: [{ name: "ghcr.io/helmrelease-autopilot/helmrelease-autopilot", newName: image, newTag: tag }],
    patches: [{ target: { kind: "Deployment", name: "helmrelease-autopilot" }, patch: JSON.stringify(add) }],
  }));
' "$(realpath --relative-to="$work" manifests/overlays/cert-manager)" "$image_name" "$image_tag" >"$work/kustomization.yaml"
"$kustomize" build "$work" >"$work/install.yaml"
retry kubectl apply --server-side -f "$work/install.yaml"
kubectl -n helmrelease-autopilot rollout status deployment/helmrelease-autopilot --timeout=300s
retry test -n "$(kubectl get mutatingwebhookconfiguration helmrelease-autopilot -o jsonpath='{.webhooks[0].clientConfig.caBundle}')"

artifact_host=${E2E_ARTIFACT_HOST:-$(docker network inspect kind --format '{{range .IPAM.Config}}{{println .Gateway}}{{end}}' | grep -m1 -E '^[0-9]+\.')}
E2E_KUBECONFIG="$KUBECONFIG" E2E_ARTIFACT_HOST="$artifact_host" E2E_HELM_CONTROLLER_VERSION="$HELM_CONTROLLER_VERSION" \
  npm run test:e2e
