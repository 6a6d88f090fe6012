"""A real Prometheus (Debian's `prometheus` package, which .ci/run installs) on loopback,
scraping one target every second, and its HTTP API's instant queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from realparts import free_port

SCRAPE_S = 1
START_S = 60


def require(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command} is not installed (Debian's prometheus package; .ci/run installs it)")
    return found


class Prometheus:
    def __init__(self, folder, target: str) -> None:
        binary = require("prometheus")
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
            f"scrape_configs:\n  - job_name: chatrelay\n    static_configs:\n      - targets: ['{target}']\n")
        self.port = free_port()
        self.log = open(folder / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"prometheus did not start (exit {self.proc.poll()}); see {self.log.name}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[tuple[dict, float]]:
        """An instant query now: [(labels, value)]; an expression Prometheus refuses fails
        the test with its error."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        assert answer["status"] == "success", f"{expr}: {answer.get('errorType')}: {answer.get('error')}"
        assert answer["data"]["resultType"] == "vector", expr
        return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

    def wait_for(self, expr: str, check, timeout: float = 30) -> list[tuple[dict, float]]:
        """Query `expr` until `check(result)` holds (new scrapes come every second)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if check(result) or time.monotonic() > deadline:
                return result
            time.sleep(SCRAPE_S / 2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


def check_metrics(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` on a scrape: exit 0 and no output when it lints clean."""
    return subprocess.run([require("promtool"), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
