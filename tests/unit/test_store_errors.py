"""What the PostgreSQL backends make of the server's errors (cluster/postgres.py): the
transient ones come out as StoreUnavailable saying what happened, which a shard answers
UNAVAILABLE (with a retry hint, at the gateway); anything else goes on as it is."""

from __future__ import annotations

import asyncpg
import pytest

from chatrelay.actors.calls import StoreUnavailable, refusal
from chatrelay.cluster.postgres import translated
from chatrelay.errors import Reason


def failing(exc: BaseException):
    @translated
    async def call():
        raise exc
    return call


@pytest.mark.parametrize("exc, said", [
    (asyncpg.DiskFullError("could not extend file"), "the store's disk is full; nothing of the request was written"),
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
     "a statement ran past the store's statement timeout; nothing of the request was written"),
    (asyncpg.AdminShutdownError("terminating connection"), "PostgreSQL is restarting or shutting down"),
    (asyncpg.CannotConnectNowError("the database system is starting up"), "PostgreSQL is restarting or shutting down"),
    (asyncpg.ConnectionDoesNotExistError("connection was closed"), "PostgreSQL: ConnectionDoesNotExistError"),
    (asyncpg.SerializationError("could not serialize access"), "PostgreSQL: SerializationError"),
])
async def test_transient_server_errors_are_unavailable_saying_what(exc, said):
    with pytest.raises(StoreUnavailable) as caught:
        await failing(exc)()
    assert str(caught.value) == said
    answer = refusal(caught.value)
    assert (answer.reason, answer.message) == (Reason.UNAVAILABLE, "relay storage unavailable: " + said)


async def test_other_errors_go_on_as_they_are():
    with pytest.raises(asyncpg.UniqueViolationError):
        await failing(asyncpg.UniqueViolationError("duplicate key"))()
