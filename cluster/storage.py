"""The relay's backends, opened from its config: the registry (etcd, or embedded SQLite)
and the message log (embedded SQLite)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from nacl.signing import SigningKey

from chatrelay.actors.config import ClusterConfig
from chatrelay.actors.registry import Registry
from chatrelay.cluster.message_log_sqlite import SqliteMessageLog


def open_registry(config: ClusterConfig) -> Registry:
    if config.etcd:
        from chatrelay.cluster.registry_etcd import EtcdRegistry, EtcdTls

        tls = EtcdTls(*config.etcd_tls) if any(config.etcd_tls) else None
        return EtcdRegistry(config.etcd, namespace=config.etcd_namespace, tls=tls)
    from chatrelay.cluster.registry_sqlite import SqliteRegistry

    return SqliteRegistry(pathlib.Path(config.data_dir) / "registry.db")


def open_message_log(config: ClusterConfig) -> SqliteMessageLog:
    return SqliteMessageLog(pathlib.Path(config.data_dir) / "messages.db")


@dataclass(frozen=True, slots=True)
class LocalStorage:
    """The `Storage` a relay's actors are given: they open its backends in their own
    process (it crosses to them by reference, as the name of this class)."""

    def identity(self, config: ClusterConfig) -> SigningKey:
        from chatrelay.cluster.identity import load_identity

        return load_identity(pathlib.Path(config.data_dir), config.relay_key)

    def registry(self, config: ClusterConfig) -> Registry:
        return open_registry(config)

    def message_log(self, config: ClusterConfig) -> SqliteMessageLog:
        return open_message_log(config)
