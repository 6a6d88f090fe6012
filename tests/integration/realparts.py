"""Real parts for integration tests: an etcd server, a relay, free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
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
