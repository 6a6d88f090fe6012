"""The relay's backends, opened from its config: the registry (etcd, or embedded SQLite)
and the store of posts and members (PostgreSQL with `--store`, or embedded SQLite)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from nacl.signing import SigningKey

from chatrelay.actors.config import ClusterConfig
from chatrelay.actors.member_store import MemberStore
from chatrelay.actors.message_log import MessageLog
from chatrelay.actors.registry import Registry


def open_registry(config: ClusterConfig) -> Registry:
    if config.etcd:
        from chatrelay.cluster.registry_etcd import EtcdRegistry, EtcdTls

        tls = EtcdTls(*config.etcd_tls) if any(config.etcd_tls) else None
        return EtcdRegistry(config.etcd, namespace=config.etcd_namespace, tls=tls)
    from chatrelay.cluster.registry_sqlite import SqliteRegistry

    return SqliteRegistry(pathlib.Path(config.data_dir) / "registry.db")


STORE_FILE = "messages.db"  # the embedded store: the message log and the member store


def open_message_log(config: ClusterConfig) -> MessageLog:
    if config.store:
        from chatrelay.cluster.message_log_postgres import PostgresMessageLog

        return PostgresMessageLog(config.store, schema=config.store_schema)
    from chatrelay.cluster.message_log_sqlite import SqliteMessageLog

    return SqliteMessageLog(pathlib.Path(config.data_dir) / STORE_FILE)


def open_member_store(config: ClusterConfig) -> MemberStore:
    if config.store:
        from chatrelay.cluster.member_store_postgres import PostgresMemberStore

        return PostgresMemberStore(config.store, schema=config.store_schema)
    from chatrelay.cluster.member_store_sqlite import SqliteMemberStore

    return SqliteMemberStore(pathlib.Path(config.data_dir) / STORE_FILE)


async def prepare_store(config: ClusterConfig) -> None:
    """Bring the store's schema up to date, or refuse a newer one (`SchemaTooNew`): done
    once by `chatrelay up` before any shard starts, so a refusal is its clear error."""
    if config.store:
        from chatrelay.cluster.postgres import Pool

        pool = Pool(config.store, config.store_schema, size=1)
        try:
            await pool.ready()
        finally:
            await pool.close()
    else:
        from chatrelay.cluster.member_store_sqlite import SqliteMemberStore

        await SqliteMemberStore(pathlib.Path(config.data_dir) / STORE_FILE).close()


@dataclass(frozen=True, slots=True)
class LocalStorage:
    """The `Storage` a relay's actors are given: they open its backends in their own
    process (it crosses to them by reference, as the name of this class)."""

    def identity(self, config: ClusterConfig) -> SigningKey:
        from chatrelay.cluster.identity import load_identity

        return load_identity(pathlib.Path(config.data_dir), config.relay_key)

    def registry(self, config: ClusterConfig) -> Registry:
        return open_registry(config)

    def message_log(self, config: ClusterConfig) -> MessageLog:
        return open_message_log(config)

    def member_store(self, config: ClusterConfig) -> MemberStore:
        return open_member_store(config)
