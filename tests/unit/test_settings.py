import pathlib

import pytest

from chatrelay import settings
from chatrelay.errors import Reason

from helpers import refused


def test_defaults():
    s = settings.load(environ={})
    assert s == settings.Settings()
    assert s.listen == "127.0.0.1:7223" and s.etcd is None and s.shards == 2


def test_environment_then_flags_override():
    environ = {"CHATRELAY_SHARDS": "4", "CHATRELAY_DATA_DIR": "env-dir", "CHATRELAY_LISTEN": "[::1]:9000"}
    s = settings.load({"shards": 8, "listen": None}, environ=environ)
    assert s.shards == 8  # flag beats variable
    assert s.listen == "[::1]:9000" and s.data_dir == pathlib.Path("env-dir")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"shards": 0}, "--shards must be 1 to 256, got 0"),
        ({"shards": "many"}, "shards must be a whole number, got 'many'"),
        ({"gateways": -1}, "--gateways must be 0 (one per CPU) to 64, got -1"),
        ({"gateways": 65}, "--gateways must be 0 (one per CPU) to 64, got 65"),
        ({"gateways": "all"}, "gateways must be a whole number, got 'all'"),
        ({"gateways": 3, "metrics": "127.0.0.1:65534"},
         "gateway 3 of a node has no metrics port: 127.0.0.1:65534 + 2 is past 65535"),
        ({"retention": -1}, "--retention must be 0 (keep all) or more, got -1"),
        ({"hot_posts_per_s": -1}, "--hot-posts must be 0 (never) or more, got -1"),
        ({"hot_posts_per_s": "fast"}, "--hot-posts must be posts per second, got 'fast'"),
        ({"subscriber_lag": 0}, "--subscriber-lag must be 1 to 1000000 posts, got 0"),
        ({"subscriber_lag": "lots"}, "subscriber_lag must be a whole number, got 'lots'"),
        ({"post_in_flight": 0}, "--post-in-flight must be 1 to 1024 calls, got 0"),
        ({"fanout_linger_s": -0.1}, "--fanout-linger must be 0 (never waits) to 10 seconds, got -0.1"),
        ({"fanout_linger_s": 11}, "--fanout-linger must be 0 (never waits) to 10 seconds, got 11"),
        ({"fanout_linger_s": "later"}, "--fanout-linger must be seconds, got 'later'"),
        ({"fanout_linger_s": "nan"}, "--fanout-linger must be 0 (never waits) to 10 seconds, got nan"),
        ({"hot_check_s": "nan"}, "--hot-check must be 0.1 to 3600 seconds, got nan"),
        ({"post_in_flight": "two"}, "post_in_flight must be a whole number, got 'two'"),
        ({"etcd": "127.0.0.1:2379"}, "--etcd must be an http(s):// URL, got '127.0.0.1:2379'"),
        ({"store": "mysql://db/x"}, "--store must be a postgresql:// URL, got 'mysql://db/x'"),
        ({"store": "pg://u:secret@db/x"}, "--store must be a postgresql:// URL, got 'pg://u:***@db/x'"),
        ({"listen": "127.0.0.1"}, "--listen must be HOST:PORT, got '127.0.0.1'"),
        ({"metrics": "9464"}, "--metrics must be HOST:PORT, got '9464'"),
        ({"metrics": "127.0.0.1:0"}, "--metrics must be HOST:PORT, got '127.0.0.1:0'"),
        ({"advertise": "relay.example.org"}, "--advertise must be HOST:PORT, got 'relay.example.org'"),
        ({"advertise": "Relay.example.org:7223"}, "--advertise: link host 'Relay.example.org:7223' is not a valid host name"),
        ({"advertise": ",".join(["a:1"] * 9)}, "--advertise names 1 to 8 HOST:PORT, got '" + ",".join(["a:1"] * 9) + "'"),
        ({"ray_address": " "}, "--ray-address must be HOST:PORT, auto or ray://HOST:PORT, got ' '"),
        ({"ray_address": "ray://"}, "--ray-address must be HOST:PORT, auto or ray://HOST:PORT, got 'ray://'"),
        ({"ray_address": "ray://head"}, "--ray-address must be HOST:PORT, auto or ray://HOST:PORT, got 'ray://head'"),
        ({"ray_address": "RAY://head:10001"},
         "--ray-address must be HOST:PORT, auto or ray://HOST:PORT, got 'RAY://head:10001'"),
        ({"ray_address": "head:0"}, "--ray-address must be HOST:PORT, auto or ray://HOST:PORT, got 'head:0'"),
        ({"forward": "7224"}, "--forward must be HOST:PORT, got '7224'"),
        ({"forward": "127.0.0.1:0", "insecure": True}, "--forward carries TLS only: it does not go with --insecure"),
        ({"forward_source": "relay.example.org"}, "--forward-source must be an IP address, got 'relay.example.org'"),
        ({"forward_per_minute": 0}, "--forward-per-minute must be 1 to 1000000, got 0"),
        ({"traces": "otlp://collector"}, "--traces must be a folder or otlp://HOST:PORT, got 'otlp://collector'"),
        ({"traces": "otlp://127.0.0.1:0"}, "--traces must be a folder or otlp://HOST:PORT, got 'otlp://127.0.0.1:0'"),
        ({"traces": "otlp://Collector:4317"}, "--traces must be a folder or otlp://HOST:PORT, got 'otlp://Collector:4317'"),
        ({"traces": "http://collector:4318"}, "--traces must be a folder or otlp://HOST:PORT, got 'http://collector:4318'"),
        ({"traces": " "}, "--traces must be a folder or otlp://HOST:PORT, got ' '"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    err = refused(Reason.MALFORMED, settings.load, overrides, environ={})
    assert err.message == message


def test_metrics_endpoint_from_the_environment():
    s = settings.load({}, environ={"CHATRELAY_METRICS": "127.0.0.1:9464"})
    assert s.metrics == "127.0.0.1:9464"


def test_traces_go_to_a_folder_or_an_otlp_collector():
    assert settings.load({"traces": "otlp://[::1]:4317"}, environ={}).traces == "otlp://[::1]:4317"
    assert settings.load({}, environ={"CHATRELAY_TRACES": "otlp://otel-collector.monitoring:4317"}).traces \
        == "otlp://otel-collector.monitoring:4317"
    assert settings.load({"traces": "spans"}, environ={}).traces == "spans"


def test_ray_addresses():
    for address in ("auto", "127.0.0.2:6390", "ray://127.0.0.1:10001", "ray://raycluster-head-svc.relays:10001"):
        assert settings.load({"ray_address": address}, environ={}).ray_address == address


def test_port_zero_is_allowed_for_tests():
    assert settings.load({"listen": "127.0.0.1:0"}, environ={}).listen == "127.0.0.1:0"


def test_fanout_linger_from_flag_or_environment():
    assert settings.load({}, environ={}).fanout_linger_s == 0.25
    assert settings.load({"fanout_linger_s": "0"}, environ={}).fanout_linger_s == 0.0
    assert settings.load({}, environ={"CHATRELAY_FANOUT_LINGER_S": "0.05"}).fanout_linger_s == 0.05


def test_hot_check_window_is_bounded():
    assert settings.load({"hot_check_s": "2.5"}, environ={}).hot_check_s == 2.5
    err = refused(Reason.MALFORMED, settings.load, {"hot_check_s": 0}, environ={})
    assert err.message == "--hot-check must be 0.1 to 3600 seconds, got 0"
    err = refused(Reason.MALFORMED, settings.load, {"hot_check_s": "soon"}, environ={})
    assert err.message == "--hot-check must be seconds, got 'soon'"


def test_the_store_comes_from_the_environment_and_its_password_is_never_shown():
    s = settings.load(environ={"CHATRELAY_STORE": "postgresql://relay:s3cret@db.internal:5432/chatrelay"})
    assert s.store == "postgresql://relay:s3cret@db.internal:5432/chatrelay"
    assert "s3cret" not in str(s) and "store postgresql://relay:***@db.internal:5432/chatrelay" in str(s)
    assert settings.redact("postgresql://relay@db/x") == "postgresql://relay@db/x"


def test_the_gateways_of_a_node_share_its_port_and_each_serves_metrics_of_its_own():
    assert settings.load({}, environ={"CHATRELAY_GATEWAYS": "0"}).gateways == 0
    assert settings.gateway_addresses("0.0.0.0:7223", "0.0.0.0:9464", environ={}) == ("0.0.0.0:7223", "0.0.0.0:9464")
    assert settings.gateway_addresses("0.0.0.0:7223", "0.0.0.0:9464", environ={}, index=3) \
        == ("0.0.0.0:7223", "0.0.0.0:9467")
    node = {settings.GATEWAY_LISTEN_ENV: "[::1]:8000", settings.GATEWAY_METRICS_ENV: "[::1]:9000"}
    assert settings.gateway_addresses("0.0.0.0:7223", None, environ=node, index=1) == ("[::1]:8000", "[::1]:9001")
    assert settings.gateway_addresses("0.0.0.0:7223", None, environ={}, index=1) == ("0.0.0.0:7223", None)
    err = refused(Reason.MALFORMED, settings.gateway_addresses, "0.0.0.0:7223", "0.0.0.0:65535", {}, 1)
    assert err.message == "gateway 2 of a node has no metrics port: 0.0.0.0:65535 + 1 is past 65535"
    bad_node = {settings.GATEWAY_METRICS_ENV: "9464"}
    err = refused(Reason.MALFORMED, settings.gateway_addresses, "0.0.0.0:7223", None, bad_node, 1)
    assert err.message == "CHATRELAY_GATEWAY_METRICS must be HOST:PORT, got '9464'"
    assert settings.load({"gateways": 2, "metrics": "127.0.0.1:65534"}, environ={}).gateways == 2  # 65534, 65535
