"""CPU time by process role over a measured window, from the kernel's accounting (psutil):
what one operation costs each process of the relay and of the benchmark, and the rate at
which that cost would keep every core of the machine busy: the ceiling of that path on
these cores, measured in the same run as the figure it bounds.

    meter = Meter(children="reference server")
    meter.start()
    ...  # the measured operations
    used = meter.stop()  # {"client": 1.2, "reference server": 0.9}: CPU seconds
    print(per_operation(used, count), ceiling(used, count))

Only this process and those it started, directly or not, are counted (a local Ray
cluster, etcd, nats-server and reference servers the benchmark starts are all its
descendants), so another cluster on the machine is not. A process that ends inside the
window is not counted (none of the relay's does while a benchmark measures); one that
starts inside it counts from its start.
"""

from __future__ import annotations

import os

import psutil

# In the order they are printed; the benchmark's other processes go under `children`.
ROLES = ("client", "gateway", "shards", "ray", "etcd", "nats-server")


def cores() -> int:
    """The cores this process may run on (what the machine gives the benchmark)."""
    return len(os.sched_getaffinity(0))


class Meter:
    """CPU seconds used, by role, between `start()` and `stop()`. Roles: this process
    ("client"), the relay's gateway and shard actors, Ray's own processes and idle workers
    ("ray"), etcd, nats-server; processes whose pids `named` gives take the role named
    there (client processes of their own, or this one under another name); other
    processes it started (a reference server in a process of its own, a flood) go under
    `children`."""

    def __init__(self, children: str = "children", named: dict[int, str] | None = None) -> None:
        self.children = children
        self.named = named or {}  # pid -> role, for processes this one started to play a part
        self._at_start: dict[tuple[int, float], float] = {}
        self.used: dict[str, float] = {}  # what the last stop() returned

    def _role(self, pid: int, info: dict) -> str:
        if pid in self.named:
            return self.named[pid]
        if pid == os.getpid():
            return "client"
        name = info["name"] or ""
        command = " ".join(info["cmdline"] or ())
        if command.startswith("ray::"):
            if "GatewayActor" in command:
                return "gateway"
            return "shards" if "RelayShard" in command else "ray"
        if name in ("raylet", "gcs_server") or "/ray/" in command:
            return "ray"
        if name.startswith("etcd"):
            return "etcd"
        if name.startswith("nats-server"):
            return "nats-server"
        return self.children

    def _now(self) -> dict[tuple[int, float], tuple[str, float]]:
        me = psutil.Process()
        out = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.as_dict(["name", "cmdline", "create_time", "cpu_times"])
            except psutil.Error:  # gone meanwhile
                continue
            times = info["cpu_times"]
            if times is not None:
                out[(proc.pid, info["create_time"])] = (self._role(proc.pid, info), times.user + times.system)
        return out

    def start(self) -> None:
        self._at_start = {key: cpu for key, (_, cpu) in self._now().items()}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for key, (role, cpu) in self._now().items():
            used[role] = used.get(role, 0.0) + cpu - self._at_start.get(key, 0.0)
        self.used = used
        return used


def _order(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def per_operation(used: dict[str, float], count: int) -> str:
    """'client 175 us, gateway 430 us, ...; 1,015 us in all': CPU an operation, by role."""
    parts = [f"{role} {1e6 * used[role] / count:,.0f} us" for role in sorted(used, key=_order)
             if 1e6 * used[role] / count >= 0.5]  # a process idle all along: not named
    return f"{', '.join(parts)}; {1e6 * sum(used.values()) / count:,.0f} us in all"


def ceiling(used: dict[str, float], count: int) -> float:
    """Operations a second with every core busy at this CPU cost an operation."""
    total = sum(used.values())
    return cores() * count / total if total > 0 else float("inf")
