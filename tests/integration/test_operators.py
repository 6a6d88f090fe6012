"""What an operator sees (issue 7): the Prometheus endpoint of `chatrelay up --metrics`,
and `chatrelay status`, `top` and `move` against known load, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request

import grpc

from nacl.signing import SigningKey
from prometheus_client.parser import text_string_to_metric_families

from chatrelay import admin_client
from chatrelay.errors import ChatRelayError, Reason

from hostile import garbage_post
from realparts import Up, cli, free_port, live_follower, ok
from traced import assert_posts_traced_to_shard_and_delivery, spans_in


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}, parsed by the Prometheus client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope")))
            samples[(sample.name, labels)] = sample.value
    return samples


def total(samples: dict, name: str, **labels) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def status(data_dir, *args) -> dict:
    return json.loads(ok("status", "--data-dir", str(data_dir), "--json", *args))


def top(data_dir, *args) -> dict:
    return json.loads(ok("top", "--data-dir", str(data_dir), "--json", *args))


def test_metrics_and_admin_views_follow_the_cli_scenario(tmp_path):
    data, metrics_port = tmp_path / "relay", free_port()
    owner, quiet_owner, bob = (str(tmp_path / f"{n}.json") for n in ("owner", "quiet", "bob"))
    traces = tmp_path / "traces"
    up = Up(data, free_port(), extra=["--metrics", f"127.0.0.1:{metrics_port}", "--traces", str(traces)])
    follower = poster = None
    try:
        before = scrape(metrics_port)
        # Every counter is there from the start, at zero: a panel shows 0 before its first event.
        names = {n for n, _ in before}
        for name in ("chatrelay_posts_total", "chatrelay_joins_total", "chatrelay_registrations_total",
                     "chatrelay_deliveries_total", "chatrelay_subscribers_cut_off_total"):
            assert name in names and total(before, name) == 0, name
        link = ok("channel", "create", "--relay", up.link, "--name", "Weather", "--state", owner).strip()
        ok("join", link, "--state", bob, "--name", "Bob")
        follower, follow_lines = live_follower(bob, metrics_port)
        for i in range(5):
            ok("post", "--state", owner, f"post {i}")
        assert [json.loads(line)["seq"] for line in follow_lines.take(5, 60)] == [1, 2, 3, 4, 5]
        assert_posts_traced_to_shard_and_delivery(lambda: spans_in(traces), 5)
        ok("channel", "create", "--relay", up.link, "--name", "Quiet", "--state", quiet_owner)
        for i in range(2):
            ok("post", "--state", quiet_owner, f"quiet {i}")

        # The scrape: counters and latency histograms moved by exactly what the CLI did.
        after = scrape(metrics_port)
        ok_ = {"outcome": "OK"}

        def grew(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        assert grew("chatrelay_posts_total", **ok_) == 7
        assert grew("chatrelay_registrations_total", **ok_) == 2
        assert grew("chatrelay_joins_total", **ok_) == 1
        assert grew("chatrelay_deliveries_total") >= 5
        assert grew("messaging_process_duration_seconds_count", messaging_operation_name="post") == 7
        assert grew("messaging_process_duration_seconds_bucket", messaging_operation_name="post", le="+Inf") == 7
        assert grew("messaging_process_duration_seconds_sum", messaging_operation_name="post") > 0
        assert grew("messaging_process_duration_seconds_count", messaging_operation_name="join") == 1
        assert grew("rpc_server_call_duration_seconds_count", rpc_method="Post", rpc_grpc_status_code="OK") == 7
        assert total(after, "chatrelay_subscribers") == 1
        # The 7 posts went one at a time, each its group's batch in a Ray call of its own;
        # the follower's stream was checked at the shard.
        assert grew("chatrelay_shard_calls_total", chatrelay_call="posts") == 7
        assert grew("chatrelay_shard_call_items_total", chatrelay_call="posts") == 7
        assert grew("chatrelay_shard_call_items_total", chatrelay_call="checks") >= 1
        # The shards share the gateway's node: once a shard's first call (through Ray) has
        # asked for its socket, the calls go through it; the Weather posts came after the
        # join and the follower's check, each a CLI process of its own later (the tail's
        # reads of the group, not in the lanes above, go through it too).
        assert grew("chatrelay_shard_socket_calls_total") >= 5
        garbage_post(up.link)  # a stranger's undecodable Post: refused as malformed, and counted
        malformed = {"rpc_method": "Post", "rpc_grpc_status_code": "INVALID_ARGUMENT"}

        def refused_posts() -> float:
            return (total(scrape(metrics_port), "rpc_server_call_duration_seconds_count", **malformed)
                    - total(after, "rpc_server_call_duration_seconds_count", **malformed))
        deadline = time.monotonic() + 10  # the server counts a call as it ends, maybe after its answer left
        while refused_posts() < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refused_posts() == 1
        garbage_post(up.link, "Subscribe")  # an undecodable stream: refused, and counted by its status too
        bad_stream = {"rpc_method": "Subscribe", "rpc_grpc_status_code": "INVALID_ARGUMENT"}
        deadline = time.monotonic() + 10
        while (total(scrape(metrics_port), "rpc_server_call_duration_seconds_count", **bad_stream) < 1
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert total(scrape(metrics_port), "rpc_server_call_duration_seconds_count", **bad_stream) == 1
        # A method that is not there: counted by its status, its name nowhere (a stranger's
        # names would be series without end).
        garbage_post(up.link, "NoSuchMethod", expect=grpc.StatusCode.UNIMPLEMENTED)
        unimplemented = total(scrape(metrics_port), "chatrelay_rpc_errors_total", rpc_grpc_status_code="UNIMPLEMENTED")
        assert unimplemented == 1 and not any("NoSuchMethod" in str(k) for k in scrape(metrics_port))

        # status --json: the groups, the streams and the posts of this run.
        seen = status(data, "--window", "0.5")
        assert seen["health"] == "serving" and seen["nodes"] == 1 and seen["registry"] == "embedded"
        assert seen["store"] == "embedded"
        assert (seen["groups"], seen["groups_loaded"], seen["subscribers"]) == (2, 2, 1)
        assert seen["posts_accepted"] == 7 and seen["deliveries"] >= 5
        assert [s["shard_id"] for s in seen["shards"]] == ["0", "1"] and all(s["healthy"] for s in seen["shards"])
        assert sum(s["groups"] for s in seen["shards"]) == 2
        assert seen["relay_link"] == up.link
        assert len(seen["gateways"]) == 1 and seen["gateways"][0]["subscribers"] == 1

        # top --json while one channel is posted to and the other is not.
        poster = subprocess.Popen(
            ["bash", "-c", f"for i in $(seq 1 40); do chatrelay post --state {owner} busy-$i || exit 1; done"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        [first_busy] = follow_lines.take(1, 120)  # posting has begun
        for _ in range(3):  # bounded: a window in which the posting process was starved of CPU shows none
            busy = top(data, "--window", "8")
            weather, quiet = busy["groups"]
            if weather["posts_per_second"] > 0 or poster.poll() is not None:
                break
        assert weather["posts_per_second"] > 0 and weather["deliveries_per_second"] > 0
        assert weather["subscribers"] == 1 and weather["posts_accepted"] >= 5
        assert (quiet["posts_per_second"], quiet["posts_accepted"], quiet["subscribers"]) == (0, 2, 0)
        assert busy["window_seconds"] >= 8
        assert poster.wait(timeout=300) == 0

        # No label names a group: not its address, not its link.
        labels = {v for (_, ls), _ in scrape(metrics_port).items() for _, v in ls}
        assert weather["group_address"] not in labels and quiet["group_address"] not in labels
        assert not any(weather["group_address"] in v or link in v for v in labels)

        # An operator moves the busy group; posts and the follower go on.
        to = "1" if weather["shard_id"] == "0" else "0"
        assert ok("move", weather["group_address"], "--shard", to, "--data-dir", str(data)).strip() == \
            f"group {weather['group_address']} is served by shard {to}"
        ok("post", "--state", owner, "after the move")
        moved = {g["group_address"]: g for g in top(data, "--window", "0.2")["groups"]}
        assert moved[weather["group_address"]]["shard_id"] == to
        texts = [json.loads(line)["text"] for line in [first_busy, *follow_lines.take(40, 120)]]
        assert texts == [f"busy-{i}" for i in range(1, 41)] + ["after the move"]
    finally:
        for child in (follower, poster):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(timeout=10)
        up.stop()


def test_admin_calls_need_the_operator_key(tmp_path):
    data = tmp_path / "relay"
    up = Up(data, free_port())
    try:
        stranger = tmp_path / "stranger.key"
        stranger.write_bytes(bytes(SigningKey.generate()))
        refused = cli("status", "--data-dir", str(data), "--operator-key", str(stranger))
        assert refused.returncode == 2
        assert refused.stderr == "chatrelay: admin request is not signed by this relay's operator key (unknown_signer)\n"
        short = tmp_path / "short.key"
        short.write_bytes(b"x" * 5)
        bad = cli("top", "--data-dir", str(data), "--operator-key", str(short))
        assert bad.returncode == 2 and bad.stderr == f"chatrelay: {short} is not a key file (32 bytes) (malformed)\n"
        window = cli("status", "--data-dir", str(data), "--window", "60")
        assert window.returncode == 2 and window.stderr == "chatrelay: --window must be 0.1 to 10 seconds, got 60\n"
        nowhere = cli("status", "--data-dir", str(tmp_path / "none"), "--operator-key", str(stranger))
        assert nowhere.returncode == 2 and nowhere.stderr.startswith("chatrelay: no relay link in ")

        link = (data / "relay-link.txt").read_text().strip()
        key = SigningKey((data / "operator.key").read_bytes())
        from chatrelay.client import target_of_link
        from chatrelay.links import ShortLink

        target = target_of_link(ShortLink.parse(link))  # PIN@HOST:PORT

        async def calls():
            async with admin_client.AdminClient(target, key) as c:
                moved = None
                try:  # a Status signature does not open MoveGroup
                    envelope = admin_client.request(key, "Status", group_address="x", to_shard=1)
                    from chatrelay.v1 import relay_pb2

                    await c._call("MoveGroup", relay_pb2.MoveGroupRequest(envelope=envelope))
                except ChatRelayError as exc:
                    moved = exc
                missing = None
                try:
                    await c.move("no-such-group", 0)
                except ChatRelayError as exc:
                    missing = exc
                return moved, missing
        moved, missing = asyncio.run(calls())
        assert (moved.reason, moved.message) == (
            Reason.MALFORMED, "admin request was signed for 'Status', not 'MoveGroup'")
        assert (missing.reason, missing.message) == (Reason.UNKNOWN_ADDRESS, "no group at this address")
    finally:
        up.stop()
