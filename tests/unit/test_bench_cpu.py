"""bench/cpu.py: the CPU a process used inside the window, by role, read from the kernel
(a real child process burning a known amount), and how it is printed per operation."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import cpu  # noqa: E402

BURN_S = 0.3
TICK_S = 0.03  # the kernel counts user and system time apart, each in 10 ms ticks, truncated
# Says it is ready, waits for a line, burns BURN_S of CPU, says so, then sleeps until killed.
BURNER = f"""
import sys, time
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() < start + {BURN_S}:
    pass
print("done", flush=True)
time.sleep(60)
"""


def burned(make_meter) -> dict:
    """What a meter made by `make_meter(child_pid)` counts while a child burns BURN_S of
    CPU inside its window."""
    child = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"  # its start-up is over before the window
        meter = make_meter(child.pid)
        meter.start()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        used = meter.stop()
    finally:
        child.kill()
        child.wait()
    assert meter.used is used
    return used


def test_a_child_burning_inside_the_window_is_counted_under_its_role():
    used = burned(lambda pid: cpu.Meter(children="spawned"))
    assert BURN_S - TICK_S <= used["spawned"] < BURN_S + 0.2


def test_a_named_process_is_counted_under_its_name_and_this_one_too():
    used = burned(lambda pid: cpu.Meter(children="spawned", named={pid: "subscribers", os.getpid(): "poster"}))
    assert BURN_S - TICK_S <= used["subscribers"] < BURN_S + 0.2
    assert "poster" in used and "client" not in used  # this process, under its name
    # (the suite's other processes, a Ray cluster and etcd, may be counted beside them)


def test_per_operation_names_the_roles_in_order_and_leaves_out_the_idle():
    used = {"shards": 0.276, "reference server": 0.5, "client": 0.140, "gateway": 0.315, "ray": 0.0001}
    assert cpu.per_operation(used, 1000) == (
        "client 140 us, gateway 315 us, shards 276 us, reference server 500 us; 1,231 us in all")


def test_the_ceiling_is_every_core_busy_at_the_cost_of_one_operation():
    assert cpu.ceiling({"client": 0.5, "gateway": 0.5}, 1000) == pytest.approx(cpu.cores() * 1000)
    assert cpu.ceiling({}, 1000) == float("inf")
