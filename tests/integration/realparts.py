"""Real parts for integration tests: an etcd server, a relay, free loopback ports."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """A real etcd on loopback ports, with its own data dir."""

    def __init__(self, data_dir) -> None:
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log = open(os.path.join(data_dir, "etcd.log"), "wb")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            pytest.fail("etcd is not installed: apt-get install -y etcd-server (see .ci/run)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                binary, "--name", "test", "--data-dir", os.path.join(self.data_dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"test={peer}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"etcd exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if json.loads(response.read()).get("health") == "true":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"etcd did not become healthy within {timeout} s")

    def restart(self) -> None:
        """Stop and start again on the same ports and data: clients reconnect."""
        self.stop(keep_log=True)
        self.start()

    def stop(self, keep_log: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not keep_log:
            self.log.close()


def start_relay(data_dir, **overrides):
    from chatrelay.cluster import up
    from chatrelay.settings import Settings

    settings = Settings(**{"data_dir": data_dir, "listen": "127.0.0.1:0", "shards": 2, **overrides})
    return up.start(settings)


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


def cli(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(["chatrelay", *args], capture_output=True, text=True, timeout=timeout)


def ok(*args) -> str:
    result = cli(*args)
    assert result.returncode == 0, f"chatrelay {' '.join(args)}: {result.stderr}"
    return result.stdout
