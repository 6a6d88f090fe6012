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


# ---- a full disk ----------------------------------------------------------------------

class SmallDisk:
    """A tmpfs of `size` (mount's notation, e.g. 1m) at a new folder under the system's
    temporary dir (where a server's own user may go too); unmounted and removed after."""

    def __init__(self, size: str) -> None:
        import tempfile

        self.path = tempfile.mkdtemp(prefix="chatrelay-full-disk-")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", self.path],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            os.rmdir(self.path)
        assert mounted.returncode == 0, f"a full disk is made with a tmpfs mount (as root): {mounted.stderr.strip()}"

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", self.path], capture_output=True)
        os.rmdir(self.path)


async def fill_until_full(log, most: int) -> int:
    """Appends of 16 KB to one stream until the store's disk is full (within `most`
    appends): the refusal says so, as a client is told, and every append acked before it
    reads back. The last acked seq."""
    from chatrelay.actors.calls import StoreUnavailable, refusal
    from chatrelay.errors import Reason

    acked = 0
    with pytest.raises(StoreUnavailable) as caught:
        for _ in range(most):
            acked = (await log.append("s", [os.urandom(2000) for _ in range(8)])).seqs[-1]
    answer = refusal(caught.value)
    assert (answer.reason, answer.message) == (
        Reason.UNAVAILABLE, "relay storage unavailable: the store's disk is full; nothing of the request was written")
    assert acked > 0 and await log.last_seq("s") == acked
    assert [r.seq for r in await log.read("s", acked - 3)] == [acked - 2, acked - 1, acked]
    return acked


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

    def __init__(self, data_dir, port, etcd=None, extra=(), link_host="127.0.0.1", prefix=()):
        args = [*prefix, "chatrelay", "up", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--shards", "2"]
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


def metric(port: int, name: str) -> float:
    """The sum of every sample of `name` on the Prometheus endpoint at `port`."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


def live_follower(state: str, metrics_port: int) -> tuple[subprocess.Popen, Lines]:
    """`chatrelay read --follow --json` for `state`, once the gateway counts its stream
    open (so posts reach it live, not from the log); its process and its lines."""
    follower = subprocess.Popen(["chatrelay", "read", "--state", state, "--follow", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = Lines(follower.stdout)
    deadline = time.monotonic() + 60
    while metric(metrics_port, "chatrelay_subscribers") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(metrics_port, "chatrelay_subscribers") == 1
    return follower, lines

