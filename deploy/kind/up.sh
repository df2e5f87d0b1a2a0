#!/usr/bin/env bash
# byollm on a kind cluster, for users with Docker:
#   creates a kind cluster, builds the operator and router images from this checkout, loads
#   them into the cluster (no registry), and installs the Helm chart.
#
#   deploy/kind/up.sh            # cluster "byollm" (KIND_CLUSTER to change)
#   deploy/kind/up.sh down       # delete the cluster
#
# Needs: docker, kind, kubectl; helm is built by hack/tools.sh when not on PATH.
# NOT run in this project's CI: the CI machine has no Docker engine (the tests use a real
# control plane built from Go modules instead; see README "Testing"). kind's default CNI
# (kindnet) does not enforce NetworkPolicy: install Calico or Cilium to see the routers'
# egress/ingress policies take effect.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CLUSTER=${KIND_CLUSTER:-byollm}
TAG=${BYOLLM_TAG:-dev}
NS=byollm-system

if [[ ${1:-up} == down ]]; then
  exec kind delete cluster --name "$CLUSTER"
fi

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is required" >&2; exit 1; }
done
HELM=$(command -v helm || hack/tools.sh helm)

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

for image in operator router; do
  docker build -f "deploy/docker/$image.Dockerfile" -t "byollm/$image:$TAG" .
  kind load docker-image --name "$CLUSTER" "byollm/$image:$TAG"
done

kubectl apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
  labels: {pod-security.kubernetes.io/enforce: restricted}
YAML
"$HELM" upgrade --install byollm charts/byollm -n "$NS" \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set router.image.tag="$TAG" --set router.image.pullPolicy=Never \
  --wait --timeout 180s

cat <<MSG

byollm is installed on kind-$CLUSTER. Try a tenant (OpenAI shown; any example works):

  kubectl create namespace tenant-acme
  kubectl -n tenant-acme create secret generic acme-openai --from-literal=apiKey=\$OPENAI_API_KEY
  kubectl apply -f deploy/examples/llmconfig-openai.yaml
  kubectl -n tenant-acme get llmc acme -w
  kubectl -n tenant-acme port-forward svc/acme-router 8080 &
  TOKEN=\$(kubectl -n tenant-acme get secret acme-router-token -o jsonpath='{.data.token}' | base64 -d)
  curl -s localhost:8080/v1/chat/completions -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Hello"}]}'

(The example's access.podSelector admits only pods labelled app=agent; port-forward goes
around the NetworkPolicy.) Remove everything: deploy/kind/up.sh down
MSG
