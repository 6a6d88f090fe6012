"""Waiters and their answers."""

from __future__ import annotations

import asyncio


def settle(future: asyncio.Future, result) -> None:
    """Hand a waiter its result, or the exception that is its result, unless it has gone."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
