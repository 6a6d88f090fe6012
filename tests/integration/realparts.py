"""Real parts for integration tests: the harness (etcd, a relay, free loopback ports), and
`chatrelay up` and the CLI run as a user runs them."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from chatrelay.cluster import harness
from chatrelay.cluster.harness import EtcdServer, free_port  # noqa: F401  (the tests' real parts)


def start_relay(data_dir, **overrides):
    return harness.start_relay(data_dir, **overrides)


async def follow_into(member, received: list, count: int, max_reconnects: int = 200) -> None:
    """Follow a group with the SDK, collecting post texts until `count` have come."""
    from chatrelay import client

    async for p in client.follow(member, max_reconnects=max_reconnects):
        received.append(p.text)
        if len(received) == count:
            return


# ---- the CLI, as a user runs it ------------------------------------------------------

STARTUP_S = 120


class Lines:
    """A child's stdout, line by line, with timeouts (a thread reads; select on a
    buffered pipe would miss lines already buffered)."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, timeout: float) -> str | None:
        try:
            return self.queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def take(self, count: int, timeout: float) -> list[str]:
        lines, deadline = [], time.monotonic() + timeout
        while len(lines) < count:
            line = self.next(deadline - time.monotonic())
            if line is None:
                break
            lines.append(line)
        return lines


class Up:
    """`chatrelay up` as a child process."""

    def __init__(self, data_dir, port, etcd=None, extra=(), link_host="127.0.0.1"):
        args = ["chatrelay", "up", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--shards", "2"]
        if etcd:
            args += ["--etcd", etcd]
        args += list(extra)
        os.makedirs(data_dir, exist_ok=True)
        self.log = open(os.path.join(str(data_dir), f"up-{time.time_ns()}.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines = Lines(self.proc.stdout)
        self.link = self._line()
        assert self.link.startswith(f"https://{link_host}:{port}/r#"), self.link
        assert self._line() == "ready"

    def _line(self) -> str:
        line = self.lines.next(STARTUP_S)
        if line is None:
            self.stop()
            pytest.fail(f"chatrelay up did not start in time (exit {self.proc.poll()}); see {self.log.name}")
        return line.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


def cli(*args, timeout=60, env=None) -> subprocess.CompletedProcess:
    """`chatrelay ARGS`; `env`, variables set for it on top of this process's."""
    import os

    return subprocess.run(["chatrelay", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def ok(*args) -> str:
    result = cli(*args)
    assert result.returncode == 0, f"chatrelay {' '.join(args)}: {result.stderr}"
    return result.stdout
