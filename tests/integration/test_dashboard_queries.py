"""The Grafana dashboard against a real Prometheus (issue 20): Prometheus scrapes `chatrelay
up --metrics` while the CLI scenario runs, `promtool check metrics` lints a scrape, and
every expression of the dashboard is evaluated through Prometheus's HTTP API: none is
refused, each gives 0 before its event, and data once its event has happened."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import urllib.request

import grpc
import pytest
from nacl.signing import SigningKey

from chatrelay import client, connection, members
from chatrelay.group import GroupKind
from chatrelay.links import ShortLink
from chatrelay.state import unb64
from chatrelay.v1 import relay_pb2, relay_pb2_grpc

from hostile import garbage_post
from prometheus_server import Prometheus, check_metrics
from realparts import Lines, Up, free_port, ok

DASHBOARD = pathlib.Path(__file__).parents[2] / "helm" / "chatrelay" / "dashboards" / "chatrelay.json"
# Grafana's $__rate_interval is at least four scrape intervals; ten minutes keep an event in
# the window for the whole test.
RATE_INTERVAL = "10m"
LAG = 50  # the relay's --subscriber-lag: a stream further behind is cut off
BIG = 8000  # bytes a post: a few fill a stream's flow-control window
FLOOD = 1000  # about 8 MB, far more than the transport holds for a reader that waits

# What each panel shows before its event (0, or nothing for a latency: no call has taken
# any time yet) and what makes it show data.
ZERO, NONE = "zero", "none"
PANELS = {
    ("Throughput", "posts/s"): ZERO,
    ("Throughput", "deliveries/s"): ZERO,
    ("Throughput", "joins/s"): ZERO,
    ("Throughput", "registrations/s"): ZERO,
    ("Post latency (arrival to ack)", "p50"): NONE,
    ("Post latency (arrival to ack)", "p99"): NONE,
    ("Call latency p99 by method", "{{rpc_method}}"): NONE,
    ("Errors by status", "{{rpc_grpc_status_code}}"): ZERO,
    ("Errors by status", "streams cut off"): ZERO,
    ("Mailbox depth by shard", "shard {{chatrelay_shard}}"): ZERO,
    ("Subscribers", "open streams"): ZERO,
    ("Shard placement: groups loaded", "shard {{chatrelay_shard}}"): ZERO,
    ("Calls to the shards", "calls/s {{chatrelay_call}}"): ZERO,
    ("Calls to the shards", "items/s {{chatrelay_call}}"): ZERO,
    ("Reader checks at the shards", "{{chatrelay_check}}/s"): ZERO,
}


def dashboard_queries() -> dict[tuple[str, str], str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {(panel["title"], target["legendFormat"]): target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            for panel in dashboard["panels"] for target in panel["targets"]}


def stall_a_stream_until_cut_off(relay_link: str) -> None:
    """A member's stream that reads nothing while the owner posts 8 MB: the relay cuts it off."""
    target = client.target_of_link(ShortLink.parse(relay_link))

    async def run() -> None:
        owned = await client.create_group([relay_link], "Flood", GroupKind.CHANNEL)
        member = await client.join(owned.link, "slow")
        key, group_id = SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id)
        address = owned.relays[0].address
        credential = client.credential(SigningKey(unb64(member.sign_seed)), member.relays[0].address)
        async with await connection.open_channel(target, options=[]) as channel:
            call = relay_pb2_grpc.RelayServiceStub(channel).Subscribe(relay_pb2.SubscribeRequest(credential=credential))
            async with client.RelayClient(target) as rc:
                semaphore = asyncio.Semaphore(8)

                async def post(i: int) -> None:
                    async with semaphore:
                        await rc.post(address, members.sign_post(key, group_id, b"x" * BIG))
                await post(0)
                first = await asyncio.wait_for(call.read(), 60)  # the stream is live
                assert [d.seq for d in first.deliveries] == [1]
                await asyncio.wait_for(asyncio.gather(*(post(i) for i in range(1, FLOOD))), 180)
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                for _ in range(FLOOD):  # each read brings at least one post, or the end
                    await asyncio.wait_for(call.read(), 60)
            assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    asyncio.run(run())


def test_every_dashboard_expression_evaluates_in_prometheus_and_shows_its_event(tmp_path):
    metrics_port = free_port()
    queries = dashboard_queries()
    assert set(queries) == set(PANELS)  # a new panel says here what its event is
    up = Up(tmp_path / "relay", free_port(),
            extra=["--metrics", f"127.0.0.1:{metrics_port}", "--subscriber-lag", str(LAG)])
    prometheus = follower = None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            linted = check_metrics(response.read().decode())
        assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")
        prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{metrics_port}")
        scraped = prometheus.wait_for('count_over_time(up{job="chatrelay"}[1m])', lambda r: r and r[0][1] >= 3)
        assert scraped and scraped[0][1] >= 3, scraped
        assert [v for _, v in prometheus.query('up{job="chatrelay"}')] == [1]

        for panel, expr in queries.items():  # before anything happened
            result = prometheus.query(expr)
            if PANELS[panel] == ZERO:
                assert result and all(v == 0 for _, v in result), (panel, result)
            else:
                assert result == [], (panel, result)
        none = prometheus.query(queries[("Errors by status", "{{rpc_grpc_status_code}}")])
        assert len(none) == 16 and "OK" not in {labels["rpc_grpc_status_code"] for labels, _ in none}

        # The CLI scenario: a channel, a member following it, posts; a stranger's garbage
        # call; a member that stops reading until its stream is cut off.
        owner, bob = str(tmp_path / "owner.json"), str(tmp_path / "bob.json")
        link = ok("channel", "create", "--relay", up.link, "--name", "Weather", "--state", owner).strip()
        ok("join", link, "--state", bob, "--name", "Bob")
        follower = subprocess.Popen(["chatrelay", "read", "--state", bob, "--follow", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = Lines(follower.stdout)
        [(_, following)] = prometheus.wait_for("sum(chatrelay_subscribers)", lambda r: r and r[0][1] == 1, timeout=60)
        assert following == 1
        for i in range(3):
            ok("post", "--state", owner, f"post {i}")
        assert [json.loads(line)["seq"] for line in lines.take(3, 60)] == [1, 2, 3]
        garbage_post(up.link)
        stall_a_stream_until_cut_off(up.link)
        cut_off = queries[("Errors by status", "streams cut off")]
        [(_, cut)] = prometheus.wait_for(cut_off, lambda r: r and r[0][1] > 0)
        assert cut > 0
        loaded = queries[("Shard placement: groups loaded", "shard {{chatrelay_shard}}")]
        # The gateway reads the shards' figures every few seconds.
        assert sum(v for _, v in prometheus.wait_for(loaded, lambda r: sum(v for _, v in r) == 2)) == 2

        after = {panel: prometheus.query(expr) for panel, expr in queries.items()}
        for panel in ("Throughput", "posts/s"), ("Throughput", "deliveries/s"), ("Throughput", "joins/s"), \
                ("Throughput", "registrations/s"), ("Post latency (arrival to ack)", "p50"), \
                ("Post latency (arrival to ack)", "p99"), ("Errors by status", "streams cut off"):
            [(_, value)] = after[panel]
            assert value > 0, (panel, after[panel])
        methods = {labels["rpc_method"]: v for labels, v in after[("Call latency p99 by method", "{{rpc_method}}")]}
        # Each method called twice or more (a series that appears with its first call has
        # no rate until its second: Prometheus counts increases between samples).
        assert {"RegisterGroup", "Join", "Post"} <= set(methods) and methods["Post"] > 0, methods
        errors = {labels["rpc_grpc_status_code"]: v for labels, v in after[("Errors by status", "{{rpc_grpc_status_code}}")]}
        assert errors["INVALID_ARGUMENT"] > 0 and errors["RESOURCE_EXHAUSTED"] > 0, errors  # the garbage, the cut-off
        assert sum(errors.values()) == errors["INVALID_ARGUMENT"] + errors["RESOURCE_EXHAUSTED"], errors
        [(_, subscribers)] = after[("Subscribers", "open streams")]
        assert subscribers == 1  # the follower; the cut-off stream is gone
        groups = {labels["chatrelay_shard"]: v for labels, v in after[("Shard placement: groups loaded", "shard {{chatrelay_shard}}")]}
        assert set(groups) == {"0", "1"} and sum(groups.values()) == 2, groups
        depth = {labels["chatrelay_shard"]: v for labels, v in after[("Mailbox depth by shard", "shard {{chatrelay_shard}}")]}
        assert set(depth) == {"0", "1"} and all(v >= 0 for v in depth.values()), depth
        for target in "calls/s {{chatrelay_call}}", "items/s {{chatrelay_call}}":  # the posts, the follower's check
            kinds = {labels["chatrelay_call"]: v for labels, v in after[("Calls to the shards", target)]}
            assert set(kinds) == {"posts", "calls", "checks"} and kinds["posts"] > 0 and kinds["checks"] > 0, kinds
        # The follower's stream and the stalled one: credentials new to the shards, so verified.
        checked = after[("Reader checks at the shards", "{{chatrelay_check}}/s")]
        checks = {labels["chatrelay_check"]: v for labels, v in checked}
        assert set(checks) == {"verified", "remembered"} and checks["verified"] > 0, checks
    finally:
        if follower is not None:
            follower.kill()
            follower.wait(timeout=30)
        if prometheus is not None:
            prometheus.stop()
        up.stop()


def test_promtool_refuses_a_scrape_that_breaks_the_conventions():
    """The lint is no formality: a counter without _total is refused."""
    linted = check_metrics("# HELP posts Posts.\n# TYPE posts counter\nposts 1\n")
    assert (linted.returncode, linted.stdout, linted.stderr) == (3, "", 'posts counter metrics should have "_total" suffix\n')
