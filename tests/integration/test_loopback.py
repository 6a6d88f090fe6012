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


def test_a_gateway_port_is_picked_below_the_kernels_ephemeral_ports():
    """`--listen HOST:0` picks the gateway's port once, for the relay link: below the
    range outgoing connections draw from, so none takes it before the gateway binds it
    (a TLS test once failed that way, the port taken in between)."""
    import socket

    from chatrelay.cluster.ports import PORT_SPAN, pick_port

    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    ports = [pick_port("127.0.0.1") for _ in range(20)]
    assert all(max(1024, low - PORT_SPAN) <= p < low for p in ports), ports
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # and free
