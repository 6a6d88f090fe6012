"""The Grafana dashboard against Grafana's own schema: the JSON, typed as `Dashboard` of
@grafana/schema, must pass the TypeScript compiler (both pinned, installed by
scripts/install_dashboard_check.sh, which .ci/run runs; skipped, saying so, where they
are not installed). Nothing is fetched here: the tests reach no network."""

from __future__ import annotations

import json
import pathlib
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "helm" / "chatrelay" / "dashboards" / "chatrelay.json"
CHECK = ROOT / "build" / "dashboard-check"
TSC = CHECK / "node_modules" / ".bin" / "tsc"


def type_check(dashboard: dict) -> subprocess.CompletedProcess:
    if not TSC.exists():
        pytest.skip("@grafana/schema and TypeScript are not installed: scripts/install_dashboard_check.sh does it "
                    "(.ci/run runs it)")
    with tempfile.TemporaryDirectory(dir=CHECK) as folder:  # beside node_modules, where the import resolves
        source = pathlib.Path(folder) / "dashboard.ts"
        source.write_text("import { Dashboard } from '@grafana/schema';\n\n"
                          f"export const dashboard: Dashboard = {json.dumps(dashboard, indent=1)};\n")
        config = pathlib.Path(folder) / "tsconfig.json"
        config.write_text(json.dumps({
            "compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext", "moduleResolution": "nodenext",
                                "target": "es2022", "skipLibCheck": True},
            "files": ["dashboard.ts"],
        }))
        return subprocess.run([str(TSC), "-p", str(config)], capture_output=True, text=True, timeout=120, cwd=folder)


def test_the_dashboard_type_checks_against_grafanas_schema():
    done = type_check(json.loads(DASHBOARD.read_text()))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_dashboard_grafana_would_not_take_is_caught():
    """The check can fail: the variable as it was before (`"current": {}`) is refused."""
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["templating"]["list"][0]["current"] = {}
    done = type_check(dashboard)
    assert done.returncode != 0
    assert "Type '{}' is missing the following properties from type 'VariableOption': text, value" in done.stdout
