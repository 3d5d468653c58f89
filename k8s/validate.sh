#!/usr/bin/env bash
# Render the kustomize base and every overlay with kubectl's built-in kustomize and validate what they render
# against the Kubernetes API's schemas (kubernetes-validate, strict: unknown fields are errors). Custom resources
# (KEDA, Strimzi) have no schema there and are reported as such. An overlay's git-ignored secrets.env is stood in for
# by its committed .example, in a scratch copy of k8s/.   Run by `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl > /dev/null || { echo "kubectl is needed to render k8s/ (kubectl kustomize)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r k8s "$scratch/"
for example in "$scratch"/k8s/overlays/*/*.env.example; do
  cp "$example" "${example%.example}"
done
for directory in "$scratch"/k8s/base "$scratch"/k8s/overlays/*/; do
  name=${directory#"$scratch"/}
  kubectl kustomize "$directory" > "$scratch/rendered.yaml"
  kubernetes-validate --strict --quiet "$scratch/rendered.yaml"
  echo "${name%/}: $(grep -c '^kind:' "$scratch/rendered.yaml") objects rendered and valid"
done
