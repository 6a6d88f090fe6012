"""Real parts on loopback for the tests and the benchmarks: a real etcd (the `etcd` binary
of the etcd-server Debian package) with a data dir of its own, a relay started as
`chatrelay up` starts it, and free ports. Shipped with the relay, like a client's
testing module, so that tests and benchmarks start things one way."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from chatrelay.cluster import up
from chatrelay.settings import Settings


class HarnessError(RuntimeError):
    """A real part that could not be started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """A real etcd on loopback ports. Without `data_dir` it makes a temporary one and
    removes it when it stops; as a context manager it starts and stops."""

    def __init__(self, data_dir: str | None = None, name: str = "test") -> None:
        self.own_dir = data_dir is None
        self.data_dir = tempfile.mkdtemp(prefix="chatrelay-etcd-") if data_dir is None else data_dir
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log = open(os.path.join(self.data_dir, "etcd.log"), "wb")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "EtcdServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise HarnessError("etcd is not installed: apt-get install -y etcd-server (see .ci/run)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                binary, "--name", self.name, "--data-dir", os.path.join(self.data_dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"etcd exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if json.loads(response.read()).get("health") == "true":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise HarnessError(f"etcd did not become healthy within {timeout} s")

    def restart(self) -> None:
        """Stop and start again on the same ports and data: clients reconnect."""
        self.stop(keep=True)
        self.start()

    def stop(self, keep: bool = False) -> None:
        """Stop it; unless `keep`, close its log (and remove a data dir it made)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not keep:
            self.log.close()
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


# A benchmark's one client makes thousands of groups over one connection, which the
# per-connection quotas are there to refuse: benchmarks that do start relays without them.
NO_QUOTAS = {"registrations_per_minute": 0, "link_stores_per_minute": 0, "queues_per_minute": 0}


def start_relay(data_dir=None, **overrides) -> up.RunningRelay:
    """A relay as `chatrelay up` starts it (2 shards unless told), on a free loopback
    port, in this process's Ray (started here if there is none)."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="chatrelay-relay-")
    return up.start(Settings(**{"data_dir": data_dir, "listen": "127.0.0.1:0", "shards": 2, **overrides}))
