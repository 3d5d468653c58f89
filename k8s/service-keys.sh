#!/bin/sh
# Create each service's Ed25519 key for the service tokens of internal HTTP calls: a Secret per service holding its
# private key only (modelops-<service>-service-key, key key.pem) and one ConfigMap of every public key
# (modelops-service-keys). Existing keys are kept; run it again after adding a service.
#   sh k8s/service-keys.sh [namespace]       # from the repository root; needs kubectl and `make install`
set -eu
namespace="${1:-modelops}"
services="gateway registry trainer quantizer inference evaluator rag marketplace"
keys="$(mktemp -d)"
trap 'rm -rf "$keys"' EXIT
for service in $services; do  # the keys already made, so that keygen keeps them
    kubectl -n "$namespace" get secret "modelops-$service-service-key" -o jsonpath='{.data.key\.pem}' 2> /dev/null \
        | base64 -d > "$keys/$service.key.pem" || true
    [ -s "$keys/$service.key.pem" ] || rm -f "$keys/$service.key.pem"
done
.venv/bin/python -m modelops_shared.service_tokens keygen "$keys" $services
for service in $services; do
    kubectl -n "$namespace" create secret generic "modelops-$service-service-key" \
        --from-file=key.pem="$keys/$service.key.pem" --dry-run=client -o yaml | kubectl apply -f -
done
kubectl -n "$namespace" create configmap modelops-service-keys \
    $(for service in $services; do printf -- '--from-file=%s.pub.pem=%s ' "$service" "$keys/$service.pub.pem"; done) \
    --dry-run=client -o yaml | kubectl apply -f -
