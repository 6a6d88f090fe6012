"""All settings in one place, read and validated once.

Each field has a default, a `CHATRELAY_<NAME>` environment variable and a CLI flag; the
flag wins over the variable, the variable over the default.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from dataclasses import dataclass

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import MAX_HOSTS, check_host

ENV_PREFIX = "CHATRELAY_"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: pathlib.Path = pathlib.Path("chatrelay-data")
    listen: str = "127.0.0.1:7223"
    etcd: str | None = None
    shards: int = 2
    relay_name: str = "chatrelay"
    retention: int = 0  # posts kept per group; 0 keeps all
    post_limit: int = 15  # posts per member per window, in groups
    post_window_s: float = 60.0
    max_groups: int = 0  # 0: no limit
    deny_names: str = ""  # regular expression refused in group names
    deny_groups: pathlib.Path | None = None  # file of group ids (hex), one a line
    subscriber_lag: int = 4096  # posts a live stream may fall behind before it is cut off
    post_in_flight: int = 1  # calls carrying one group's posts a gateway has going to its shard at a time
    hot_posts_per_s: float = 0.0  # a group past this rate moves to a shard of its own; 0: never
    hot_check_s: float = 5.0  # the window over which group rates are compared with --hot-posts
    metrics: str | None = None  # HOST:PORT for the gateway's Prometheus endpoint; None: none
    ray_address: str | None = None  # join this Ray cluster instead of starting a local one
    advertise: str | None = None  # HOST:PORT[,HOST:PORT…] in the relay link; None: the gateways' own
    traces: pathlib.Path | None = None  # a folder for every relay process's spans (JSON lines); None: none

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, pathlib.Path):
            object.__setattr__(self, "data_dir", pathlib.Path(self.data_dir))
        check_host(_host_of(self.listen, "--listen", lowest_port=0))
        if self.metrics is not None:
            check_host(_host_of(self.metrics, "--metrics"))
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
        if self.ray_address is not None and not self.ray_address.strip():
            raise ChatRelayError(Reason.MALFORMED, "--ray-address must be HOST:PORT or auto")
        if self.etcd is not None and not self.etcd.startswith(("http://", "https://")):
            raise ChatRelayError(Reason.MALFORMED, f"--etcd must be an http(s):// URL, got {self.etcd!r}")
        if not 1 <= self.shards <= 256:
            raise ChatRelayError(Reason.MALFORMED, f"--shards must be 1 to 256, got {self.shards}")
        if self.post_limit < 1 or self.post_window_s <= 0:
            raise ChatRelayError(Reason.MALFORMED, "--post-limit must be at least 1 and --post-window positive")
        if self.max_groups < 0:
            raise ChatRelayError(Reason.MALFORMED, f"--max-groups must be 0 (no limit) or more, got {self.max_groups}")
        if not 1 <= self.subscriber_lag <= 1_000_000:
            raise ChatRelayError(
                Reason.MALFORMED, f"--subscriber-lag must be 1 to 1000000 posts, got {self.subscriber_lag}"
            )
        if not 1 <= self.post_in_flight <= 1024:
            raise ChatRelayError(
                Reason.MALFORMED, f"--post-in-flight must be 1 to 1024 calls, got {self.post_in_flight}"
            )
        if self.hot_posts_per_s < 0:
            raise ChatRelayError(Reason.MALFORMED, f"--hot-posts must be 0 (never) or more, got {self.hot_posts_per_s:g}")
        if not 0.1 <= self.hot_check_s <= 3600:
            raise ChatRelayError(Reason.MALFORMED, f"--hot-check must be 0.1 to 3600 seconds, got {self.hot_check_s:g}")
        if self.retention < 0:
            raise ChatRelayError(Reason.MALFORMED, f"--retention must be 0 (keep all) or more, got {self.retention}")

    def __str__(self) -> str:
        registry = self.etcd or "embedded"
        return f"data {self.data_dir}, listen {self.listen}, registry {registry}, {self.shards} shards"


def _host_of(text: str, flag: str, lowest_port: int = 1) -> str:
    """HOST of `HOST:PORT`, or a refusal naming the flag."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not lowest_port <= int(port) <= 65535:
        raise ChatRelayError(Reason.MALFORMED, f"{flag} must be HOST:PORT, got {text!r}")
    return host


def load(overrides: dict | None = None, environ: dict | None = None) -> Settings:
    """Defaults, then CHATRELAY_* variables, then `overrides` (CLI flags; None = unset)."""
    environ = os.environ if environ is None else environ
    values: dict = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, raw)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    return Settings(**values)


def _convert(name: str, value):
    if name == "data_dir":
        return pathlib.Path(value)
    if name == "hot_posts_per_s":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ChatRelayError(Reason.MALFORMED, f"--hot-posts must be posts per second, got {value!r}") from None
    if name == "hot_check_s":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ChatRelayError(Reason.MALFORMED, f"--hot-check must be seconds, got {value!r}") from None
    if name == "post_window_s":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ChatRelayError(Reason.MALFORMED, f"post window must be seconds, got {value!r}") from None
    if name in ("deny_groups", "traces"):
        return pathlib.Path(value)
    if name in ("shards", "retention", "post_limit", "max_groups", "subscriber_lag", "post_in_flight"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ChatRelayError(Reason.MALFORMED, f"{name} must be a whole number, got {value!r}") from None
    return str(value)
