#!/usr/bin/env bash
# Install what type-checks the Grafana dashboard against Grafana's own schema
# (tests/unit/test_dashboard_schema.py): @grafana/schema and TypeScript, pinned, from the
# npm registry, into build/dashboard-check/ (not in git). .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="build/dashboard-check"
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --silent @grafana/schema@13.2.3 typescript@7.0.2
"$DEST/node_modules/.bin/tsc" --version
