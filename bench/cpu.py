"""CPU time by process role over a measured window, from the kernel's accounting (psutil):
what one operation costs each process of the relay and of the benchmark, and the rate at
which that cost would keep every core of the machine busy: the ceiling of that path on
these cores, measured in the same run as the figure it bounds.

    meter = Meter(children="reference server")
    meter.start()
    ...  # the measured operations
    used = meter.stop()  # {"client": 1.2, "reference server": 0.9}: CPU seconds
    print(per_operation(used, count), ceiling(used, count))

A process that ends inside the window is not counted (none of the relay's does while a
benchmark measures); one that starts inside it counts from its start.
"""

from __future__ import annotations

import os

import psutil

# In the order they are printed; a process in none of them is not the benchmark's.
ROLES = ("client", "gateway", "shards", "ray", "etcd", "nats-server")


def cores() -> int:
    """The cores this process may run on (what the machine gives the benchmark)."""
    return len(os.sched_getaffinity(0))


class Meter:
    """CPU seconds used, by role, between `start()` and `stop()`. Roles: this process
    ("client"), the relay's gateway and shard actors, Ray's own processes and idle workers
    ("ray"), etcd, nats-server; other processes this one started (a reference server in a
    process of its own, a flood) go under `children`."""

    def __init__(self, children: str = "children") -> None:
        self.children = children
        self._at_start: dict[tuple[int, float], float] = {}
        self.used: dict[str, float] = {}  # what the last stop() returned

    def _role(self, proc: psutil.Process, mine: set[int]) -> str | None:
        if proc.pid == os.getpid():
            return "client"
        name = proc.info["name"] or ""
        command = " ".join(proc.info["cmdline"] or ())
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
        return self.children if proc.pid in mine else None

    def _now(self) -> dict[tuple[int, float], tuple[str, float]]:
        mine = {p.pid for p in psutil.Process().children(recursive=True)}
        out = {}
        for proc in psutil.process_iter(["name", "cmdline", "create_time", "cpu_times"]):
            role = self._role(proc, mine)
            times = proc.info["cpu_times"]
            if role is not None and times is not None:
                out[(proc.pid, proc.info["create_time"])] = (role, times.user + times.system)
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
