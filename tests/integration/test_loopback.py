"""The house rule on networks: a local relay listens on, and talks to, loopback only."""

import subprocess


def test_ray_and_the_relay_listen_on_loopback_only(relay, ray_session):
    @ray_session.remote
    def node_ip():
        import ray

        return ray.util.get_node_ip_address()

    assert ray_session.get(node_ip.remote()) == "127.0.0.1"
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30)
    if ss.returncode != 0:
        import pytest

        pytest.skip("ss is not available")
    ours = [
        line.split()[3] for line in ss.stdout.splitlines()
        if any(name in line for name in ("raylet", "gcs_server", "ray::", "python"))
    ]
    assert ours, "no listening Ray or relay socket found"
    outside = [a for a in ours if not a.startswith(("127.", "[::ffff:127.", "[::1]"))]
    assert outside == []
