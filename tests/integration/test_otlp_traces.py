"""Traces exported with OTLP (issue 20): `chatrelay up --traces otlp://HOST:PORT` sends
every relay process's spans to an OpenTelemetry collector over gRPC; a post is followed
from the gateway to its shard and on to its delivery there, as in the JSON files."""

from __future__ import annotations

import json
import pathlib

from realparts import Up, free_port, live_follower, ok
from traced import OtlpCollector, assert_posts_traced_to_shard_and_delivery


def test_posts_are_traced_to_an_otlp_collector(tmp_path):
    owner, bob = str(tmp_path / "owner.json"), str(tmp_path / "bob.json")
    with OtlpCollector() as collector:
        traces = f"otlp://127.0.0.1:{collector.port}"
        metrics = free_port()
        up = Up(tmp_path / "relay", free_port(), extra=["--traces", traces, "--metrics", f"127.0.0.1:{metrics}"])
        follower = None
        try:
            link = ok("channel", "create", "--relay", up.link, "--name", "Traced", "--state", owner).strip()
            ok("join", link, "--state", bob, "--name", "Bob")
            follower, lines = live_follower(bob, metrics)
            for i in range(4):
                ok("post", "--state", owner, f"post {i}")
            assert [json.loads(line)["seq"] for line in lines.take(4, 60)] == [1, 2, 3, 4]
            assert_posts_traced_to_shard_and_delivery(collector.spans, 4)
        finally:
            if follower is not None:
                follower.kill()
                follower.wait(timeout=30)
            up.stop()
        services = {s["resource"]["service.name"] for s in collector.spans()}
        assert "chatrelay-gateway" in services and services <= {"chatrelay-gateway", "chatrelay-shard-0", "chatrelay-shard-1"}
        # Nothing written to files: not in the data dir, nor in a folder named after the
        # URL where the relay ran (as a folder would be, relative to its working directory).
        assert not list((tmp_path / "relay").glob("**/*.jsonl")) and not pathlib.Path("otlp:").exists()
