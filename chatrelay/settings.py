"""All settings of a relay in one place, read and validated once.

Each field of `Settings` says its default, its help and its flag; the `chatrelay up`
options and the `CHATRELAY_<NAME>` variables are made from these fields, and every other
shape (the relay's limits and policy, the cluster config) is derived from a Settings.
The flag wins over the variable, the variable over the default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
import typing
from dataclasses import dataclass, field

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.short_links import MAX_HOSTS, check_host

ENV_PREFIX = "CHATRELAY_"
# A relay node's own choice of its gateway's addresses, from the environment `ray start`
# ran in: several relay nodes on one machine (deploy/) cannot share a port.
GATEWAY_LISTEN_ENV = ENV_PREFIX + "GATEWAY_LISTEN"
GATEWAY_METRICS_ENV = ENV_PREFIX + "GATEWAY_METRICS"
MAX_GATEWAYS = 64  # gateway processes on one relay node


def setting(default, help: str, *, flag: str | None = None, unit: str = ""):
    """A field of Settings: `flag` where it is not `--` and the name; `unit`, how a
    number of this field is read (for the refusal of one that is not)."""
    return field(default=default, metadata={"help": help, "flag": flag, "unit": unit})


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: pathlib.Path = setting(pathlib.Path("chatrelay-data"), "Where keys and state live")
    listen: str = setting("127.0.0.1:7223", "HOST:PORT of the gateway")
    etcd: str | None = setting(None, "etcd URL(s), comma-separated members, instead of the embedded registry")
    etcd_ca: pathlib.Path | None = setting(None, "CA certificate (PEM) of an https:// etcd; else the system's roots")
    etcd_cert: pathlib.Path | None = setting(None, "Client certificate (PEM) for an etcd with --client-cert-auth")
    etcd_key: pathlib.Path | None = setting(None, "Client key (PEM) of --etcd-cert")
    store: str | None = setting(
        None, "postgresql://USER@HOST:PORT/DB to keep posts and members in, instead of the embedded SQLite "
              "(the password from PGPASSWORD or ~/.pgpass on each node, or in the URL)")
    shards: int = setting(2, "Relay shard actors")
    gateways: int = setting(
        1, "Gateway processes on each relay node, sharing its port (the kernel spreads the connections), "
           "0 = one per CPU of the node; with --metrics, the Nth serves its metrics on the port N-1 above")
    relay_name: str = setting("chatrelay", "The relay's name in its link")
    retention: int = setting(0, "Posts kept per group, 0 = all")
    post_limit: int = setting(15, "Member posts per window in groups")
    post_window_s: float = setting(60.0, "The window, seconds", flag="--post-window", unit="seconds")
    mailbox_size: int = setting(1024, "Requests waiting per group before its senders get BUSY")
    freshness_s: float = setting(
        300.0, "How far from the relay's clock a post's signed time may be when it first arrives, seconds",
        flag="--freshness", unit="seconds")
    max_groups: int = setting(0, "Groups this relay serves at most, 0 = no limit")
    deny_names: str = setting("", "Refuse groups whose name matches this regular expression")
    deny_groups: pathlib.Path | None = setting(None, "File of group ids (hex) to refuse, one a line")
    idle_timeout_s: float = setting(
        300.0, "Seconds a connection with no call going on stays open", flag="--idle-timeout", unit="seconds")
    handshake_timeout_s: float = setting(
        10.0, "Seconds a new connection has to finish its handshake before it is closed",
        flag="--handshake-timeout", unit="seconds")
    keepalive_s: float = setting(
        60.0, "Seconds between the gateway's pings of a connection's peer (no answer in 20 s closes it)",
        flag="--keepalive", unit="seconds")
    streams_per_connection: int = setting(16_384, "Calls and streams one connection may have going at once")
    registrations_per_minute: int = setting(
        60, "Registrations one connection may send in a minute, 0 = no limit")
    link_stores_per_minute: int = setting(60, "Link stores one connection may send in a minute, 0 = no limit")
    queues_per_minute: int = setting(60, "Queues one connection may create in a minute, 0 = no limit")
    registrations_per_second: int = setting(
        100, "Registrations each gateway takes in a second from all connections together, 0 = no limit")
    queue_records: int = setting(1000, "Requests and messages one queue holds unread at most, 0 = no limit")
    queue_bytes: int = setting(16 * 1024 * 1024, "Bytes one queue holds unread at most, 0 = no limit")
    gateway_waiting: int = setting(
        8192, "Posts each gateway holds waiting for their group's turn, all groups together (64 KiB each at most), 0 = no limit")
    streams_per_reader: int = setting(8, "Follow streams one reader key may have open on a gateway, 0 = no limit")
    subscriber_lag: int = setting(
        4096, "Posts a stream may fall behind before it is cut off to resume from the log")
    fanout_linger_s: float = setting(
        0.25, "Most seconds a group's tail on a gateway waits, after waking its streams for new posts, before it "
              "wakes them again (150 µs for each of its streams there, up to this), so that a busy group's posts go "
              "out together; a post after a quiet spell goes out at once; 0 = never waits",
        flag="--fanout-linger", unit="seconds")
    post_in_flight: int = setting(
        1, "Calls carrying one group's posts a gateway has going to its shard at a time; posts that arrive "
           "meanwhile wait and go on together")
    hot_posts_per_s: float = setting(
        0.0, "Posts/s past which a group moves to a shard of its own, 0 = never", flag="--hot-posts",
        unit="posts per second")
    hot_check_s: float = setting(
        5.0, "Seconds over which group rates are compared with --hot-posts", flag="--hot-check", unit="seconds")
    unload_idle_s: float = setting(
        300.0, "Seconds a loaded group may go without a call before its shard lets it go from memory (it loads "
               "again on its next call), 0 = never", flag="--unload-idle", unit="seconds")
    metrics: str | None = setting(None, "HOST:PORT to serve Prometheus metrics on")
    ray_address: str | None = setting(
        None, "Join this Ray cluster instead of starting a local one: HOST:PORT (or auto) on one of its nodes, "
              "or ray://HOST:PORT (Ray Client, from anywhere)")
    advertise: str | None = setting(None, "HOST:PORT[,…] clients reach the gateways at, for the relay link")
    traces: str | None = setting(
        None, "Every relay process's trace spans: a folder to write them to (JSON lines), or otlp://HOST:PORT "
              "of an OpenTelemetry collector to export them to (OTLP over gRPC, plaintext)")
    insecure: bool = setting(False, "Serve plaintext gRPC, for clients that pass --insecure too (never for a public relay)")
    forward: str | None = setting(
        None, "HOST:PORT to forward this relay's clients' connections to other relays on (TLS they cannot be read "
              "through), so those relays never see the clients' addresses; off unless given")
    forward_private: bool = setting(False, "Forward to loopback and private addresses too (a relay on one machine)")
    forward_source: str | None = setting(None, "The local address forwarded connections leave from")
    forward_per_minute: int = setting(60, "Tunnels one client address may open in a minute")
    access_log: bool = setting(False, "Log every call (method, peer address, status) to access.log in the data dir")

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, pathlib.Path):
            object.__setattr__(self, "data_dir", pathlib.Path(self.data_dir))
        check_host(_host_of(self.listen, "--listen", lowest_port=0))
        if self.metrics is not None:
            check_host(_host_of(self.metrics, "--metrics"))
        if self.traces is not None:
            _check_traces(self.traces)
        if self.forward is not None:
            check_host(_host_of(self.forward, "--forward", lowest_port=0))
            if self.insecure:
                raise ChatRelayError(Reason.MALFORMED, "--forward carries TLS only: it does not go with --insecure")
        if self.forward_source is not None:
            try:
                ipaddress.ip_address(self.forward_source)
            except ValueError:
                raise ChatRelayError(Reason.MALFORMED, f"--forward-source must be an IP address, got "
                                                       f"{self.forward_source!r}") from None
        _bounded(self.forward_per_minute, 1, 1_000_000, "--forward-per-minute must be 1 to 1000000, got {}")
        if self.advertise is not None:
            hosts = self.advertise.split(",")
            if not 1 <= len(hosts) <= MAX_HOSTS:
                raise ChatRelayError(Reason.MALFORMED, f"--advertise names 1 to {MAX_HOSTS} HOST:PORT, got {self.advertise!r}")
            for one in hosts:
                _host_of(one, "--advertise")
                try:
                    check_host(one)
                except ChatRelayError as exc:
                    raise ChatRelayError(Reason.MALFORMED, f"--advertise: {exc.message}") from None
        if self.ray_address is not None:
            _check_ray_address(self.ray_address)
        if self.etcd is not None:
            urls = self.etcd.split(",")
            if not all(u.startswith(("http://", "https://")) for u in urls):
                raise ChatRelayError(Reason.MALFORMED, f"--etcd must be an http(s):// URL, got {self.etcd!r}")
            if len({u.partition(":")[0] for u in urls}) > 1:
                raise ChatRelayError(Reason.MALFORMED, f"--etcd URLs must all be http:// or all https://, got {self.etcd!r}")
        if self.store is not None and not self.store.startswith(("postgresql://", "postgres://")):
            raise ChatRelayError(Reason.MALFORMED, f"--store must be a postgresql:// URL, got {redact(self.store)!r}")
        tls_files = (self.etcd_ca, self.etcd_cert, self.etcd_key)
        if any(tls_files) and not (self.etcd or "").startswith("https://"):
            raise ChatRelayError(Reason.MALFORMED, "--etcd-ca, --etcd-cert and --etcd-key are for an https:// --etcd")
        if (self.etcd_cert is None) != (self.etcd_key is None):
            raise ChatRelayError(Reason.MALFORMED, "--etcd-cert and --etcd-key go together")
        for name, path in (("--etcd-ca", self.etcd_ca), ("--etcd-cert", self.etcd_cert), ("--etcd-key", self.etcd_key)):
            if path is not None and not pathlib.Path(path).is_file():
                raise ChatRelayError(Reason.MALFORMED, f"{name}: no file {path}")
        _bounded(self.shards, 1, 256, "--shards must be 1 to 256, got {}")
        _bounded(self.gateways, 0, MAX_GATEWAYS, f"--gateways must be 0 (one per CPU) to {MAX_GATEWAYS}, got {{}}")
        if self.metrics is not None and self.gateways > 1:
            gateway_addresses(self.listen, self.metrics, {}, self.gateways - 1)  # each one's metrics port
        if self.post_limit < 1 or self.post_window_s <= 0:
            raise ChatRelayError(Reason.MALFORMED, "--post-limit must be at least 1 and --post-window positive")
        _bounded(self.mailbox_size, 1, 1_000_000, "--mailbox-size must be 1 to 1000000 requests, got {}")
        _bounded(self.freshness_s, 10, 86400, "--freshness must be 10 to 86400 seconds, got {:g}")
        _bounded(self.max_groups, 0, None, "--max-groups must be 0 (no limit) or more, got {}")
        for flag_name, value in (("--registrations-per-minute", self.registrations_per_minute),
                                 ("--link-stores-per-minute", self.link_stores_per_minute),
                                 ("--queues-per-minute", self.queues_per_minute)):
            _bounded(value, 0, 1_000_000, flag_name + " must be 0 (no limit) to 1000000, got {}")
        _bounded(self.registrations_per_second, 0, 1_000_000, "--registrations-per-second must be 0 (no limit) to 1000000, got {}")
        _bounded(self.queue_records, 0, 10_000_000, "--queue-records must be 0 (no limit) to 10000000, got {}")
        _bounded(self.queue_bytes, 0, 2**40, "--queue-bytes must be 0 (no limit) to 1099511627776, got {}")
        _bounded(self.gateway_waiting, 0, 10_000_000, "--gateway-waiting must be 0 (no limit) to 10000000, got {}")
        _bounded(self.streams_per_reader, 0, 1_000_000, "--streams-per-reader must be 0 (no limit) to 1000000, got {}")
        _bounded(self.idle_timeout_s, 1, 86400, "--idle-timeout must be 1 to 86400 seconds, got {:g}")
        _bounded(self.handshake_timeout_s, 0.5, 600, "--handshake-timeout must be 0.5 to 600 seconds, got {:g}")
        _bounded(self.keepalive_s, 10, 86400, "--keepalive must be 10 to 86400 seconds, got {:g}")
        _bounded(self.streams_per_connection, 1, 1_000_000,
                 "--streams-per-connection must be 1 to 1000000, got {}")
        _bounded(self.subscriber_lag, 1, 1_000_000, "--subscriber-lag must be 1 to 1000000 posts, got {}")
        _bounded(self.fanout_linger_s, 0, 10, "--fanout-linger must be 0 (never waits) to 10 seconds, got {:g}")
        _bounded(self.post_in_flight, 1, 1024, "--post-in-flight must be 1 to 1024 calls, got {}")
        _bounded(self.hot_posts_per_s, 0, None, "--hot-posts must be 0 (never) or more, got {:g}")
        _bounded(self.hot_check_s, 0.1, 3600, "--hot-check must be 0.1 to 3600 seconds, got {:g}")
        _bounded(self.unload_idle_s, 0, 86400, "--unload-idle must be 0 (never) to 86400 seconds, got {:g}")
        _bounded(self.retention, 0, None, "--retention must be 0 (keep all) or more, got {}")

    def __str__(self) -> str:
        registry = self.etcd or "embedded"
        store = redact(self.store) if self.store else "embedded"
        return f"data {self.data_dir}, listen {self.listen}, registry {registry}, store {store}, {self.shards} shards"


def redact(url: str) -> str:
    """A URL as it may be shown: without the password it may carry."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"



OTLP_SCHEME = "otlp://"
RAY_CLIENT_SCHEME = "ray://"


def _check_ray_address(address: str) -> None:
    if address == "auto":
        return
    try:
        check_host(_host_of(address.removeprefix(RAY_CLIENT_SCHEME), "--ray-address"))
    except ChatRelayError:
        raise ChatRelayError(Reason.MALFORMED, f"--ray-address must be HOST:PORT, auto or ray://HOST:PORT, "
                                               f"got {address!r}") from None


def _check_traces(traces: str) -> None:
    """A folder, or otlp://HOST:PORT; another scheme is refused, not taken for a folder."""
    refusal = ChatRelayError(Reason.MALFORMED, f"--traces must be a folder or otlp://HOST:PORT, got {traces!r}")
    if traces.startswith(OTLP_SCHEME):
        try:
            check_host(_host_of(traces[len(OTLP_SCHEME):], "--traces"))
        except ChatRelayError:
            raise refusal from None
    elif "://" in traces or not traces.strip():
        raise refusal


def _bounded(value, low, high, message: str) -> None:
    if value != value or value < low or (high is not None and value > high):  # value != value: NaN
        raise ChatRelayError(Reason.MALFORMED, message.format(value))


def _host_of(text: str, flag: str, lowest_port: int = 1) -> str:
    """HOST of `HOST:PORT`, or a refusal naming the flag."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not lowest_port <= int(port) <= 65535:
        raise ChatRelayError(Reason.MALFORMED, f"{flag} must be HOST:PORT, got {text!r}")
    return host


def fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Settings))


def flag(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def env_name(f: dataclasses.Field) -> str:
    return ENV_PREFIX + f.name.upper()


def kind(f: dataclasses.Field) -> type:
    """bool, int, float, pathlib.Path or str: what a value of this field is read as."""
    hint = typing.get_type_hints(Settings)[f.name]
    options = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    return options[0]


def load(overrides: dict | None = None, environ: dict | None = None) -> Settings:
    """Defaults, then CHATRELAY_* variables, then `overrides` (CLI flags; None = unset)."""
    environ = os.environ if environ is None else environ
    by_name = {f.name: f for f in fields()}
    values: dict = {}
    for f in by_name.values():
        raw = environ.get(env_name(f))
        if raw is not None and raw != "":
            values[f.name] = _convert(f, raw)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _convert(by_name[name], value)
    return Settings(**values)


def one(name: str, override=None, environ: dict | None = None):
    """One setting by the rule of `load` (flag, variable, default), the others unread."""
    environ = os.environ if environ is None else environ
    f = {f.name: f for f in fields()}[name]
    raw = override if override is not None else environ.get(env_name(f)) or None
    return getattr(DEFAULTS, name) if raw is None else _convert(f, raw)


def _convert(f: dataclasses.Field, value):
    wanted = kind(f)
    if wanted is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ChatRelayError(Reason.MALFORMED, f"{env_name(f)} must be 1 or 0 (true or false), got {value!r}")
        return text in ("1", "true", "yes", "on")
    if wanted is pathlib.Path:
        return pathlib.Path(value)
    if wanted in (int, float):
        try:
            return wanted(value)
        except (TypeError, ValueError):
            if wanted is float:
                raise ChatRelayError(Reason.MALFORMED, f"{flag(f)} must be {f.metadata['unit']}, got {value!r}") from None
            raise ChatRelayError(Reason.MALFORMED, f"{f.name} must be a whole number, got {value!r}") from None
    return str(value)


def gateway_addresses(listen: str, metrics: str | None, environ: dict | None = None,
                      index: int = 0) -> tuple[str, str | None]:
    """(listen, metrics) of the `index`th gateway of this relay node: the node's own
    variables, else the relay's. The gateways of a node share its listening port; each
    serves its own metrics, the `index`th on the port `index` above the first's."""
    environ = os.environ if environ is None else environ
    node_metrics = environ.get(GATEWAY_METRICS_ENV)
    metrics = node_metrics or metrics
    if metrics and index:
        host = _host_of(metrics, GATEWAY_METRICS_ENV if node_metrics else "--metrics")
        port = int(metrics.rpartition(":")[2]) + index  # checked a port by _host_of
        if port > 65535:
            raise ChatRelayError(Reason.MALFORMED, f"gateway {index + 1} of a node has no metrics port: "
                                                   f"{metrics} + {index} is past 65535")
        metrics = f"{host}:{port}"
    return environ.get(GATEWAY_LISTEN_ENV) or listen, metrics


DEFAULTS = Settings()
