"""A shard's calls over a Unix socket, for the gateways on its node: the same packed
calls as the Ray seam (`calls.pack`), answered with the same outcomes, for a fraction of
a Ray actor call's cost. A Ray call costs about 1.4 ms of CPU and 1.3 ms of round trip
here (`bench/ray_hop.py`), and under load its two legs waited 2.3 and 2.9 ms (p50) for
the busy gateway: a post's ack waited on them more than on anything else (README,
issue 21). A gateway on another node, or one whose socket broke, calls through Ray.

A frame is an 8-byte header (length of the payload, call id; big-endian) and the
payload: a packed call one way, the pickled outcome (or the exception the call raised)
the other, as Ray's own return path pickles it. Only the shard's own user reaches the
socket: it lies in a directory of its own made with mode 0700 (a process that could
connect could as well read the shard's memory). The shard checks each call as it checks
those from Ray: a payload that is no packed call is refused as malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import struct
import tempfile

log = logging.getLogger(__name__)

HEADER = struct.Struct(">II")  # payload length, call id
MAX_FRAME = 256 << 20  # bytes of one payload at most, either way (a page of posts is at most a few MB)
READ_LIMIT = 1 << 20  # the stream reader's buffer


PREFIX = "chatrelay-shard-"  # then the shard's pid


def sweep(folder: str | None = None) -> int:
    """Remove the socket directories of this user's shards whose process is gone (a shard
    killed has no chance to): how many."""
    folder = folder or tempfile.gettempdir()
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            pid = entry.name[len(PREFIX):].partition("-")[0]
            if not (entry.name.startswith(PREFIX) and pid.isdigit() and entry.is_dir(follow_symlinks=False)):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _alive(int(pid)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


class SocketGone(ConnectionError):
    """The socket to a shard closed (the shard stopped or restarted) with calls under way:
    they are made again through Ray."""


class ShardSocketServer:
    """The shard's end: each call in a frame is served by `serve(packed)` as a task of its
    own, and answered in a frame with the same id when it is done; a call whose gateway
    went away meanwhile is still served to its end, as a Ray actor task is."""

    def __init__(self, serve) -> None:
        self.serve = serve
        self.path = ""
        self._dir = ""
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # of the connections open
        self._answers: set[asyncio.Task] = set()  # calls being served (they finish, as Ray's do, if their caller goes)

    async def start(self) -> str:
        if self._server is None:
            sweep()
            self._dir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")  # mode 0700: the shard's user only
            self.path = os.path.join(self._dir, "calls.sock")
            try:
                self._server = await asyncio.start_unix_server(self._connection, self.path, limit=READ_LIMIT)
            except BaseException:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = ""
                raise
        return self.path

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                length, call_id = HEADER.unpack(await reader.readexactly(HEADER.size))
                if length > MAX_FRAME:
                    log.warning("shard socket: a frame of %d bytes, over %d: connection closed", length, MAX_FRAME)
                    return
                answer = asyncio.create_task(self._answer(writer, call_id, await reader.readexactly(length)))
                self._answers.add(answer)
                answer.add_done_callback(self._answers.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the gateway went away; what it asked is still done, its answer let go
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, payload: bytes) -> None:
        try:
            result = (True, await self.serve(payload))
        except Exception as exc:  # what Ray would hand the caller as the task's error
            result = (False, exc)
        try:
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle: its text goes instead
            data = pickle.dumps((False, RuntimeError(f"{type(result[1]).__name__}: {result[1]}; {exc}")))
        if len(data) > MAX_FRAME:
            data = pickle.dumps((False, RuntimeError(f"an answer of {len(data)} bytes, over {MAX_FRAME}")))
        if writer.is_closing():  # its caller went away
            return
        writer.write(HEADER.pack(len(data), call_id) + data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # their reads end, and each connection with them
                writer.close()
            self._server = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""


class ShardSocketClient:
    """A gateway's end: `await call(packed)` is the shard's outcome, as from Ray; raises
    SocketGone once the socket closed (every call under way, and every call after)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self.closed: BaseException | None = None
        self.calls = 0  # calls made through the socket (for tests and figures)
        self._task = asyncio.create_task(self._read(), name="shard-socket")

    @classmethod
    async def connect(cls, path: str) -> "ShardSocketClient":
        reader, writer = await asyncio.open_unix_connection(path, limit=READ_LIMIT)
        return cls(reader, writer)

    async def call(self, packed: bytes):
        if self.closed is not None:
            raise SocketGone(f"shard socket closed: {self.closed}")
        if len(packed) > MAX_FRAME:
            raise SocketGone(f"a call of {len(packed)} bytes, over {MAX_FRAME}: through Ray")
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        call_id = self._next_id
        answer = self._pending[call_id] = asyncio.get_running_loop().create_future()
        self.calls += 1
        try:
            self._writer.write(HEADER.pack(len(packed), call_id) + packed)
            ok, value = await answer
        finally:
            self._pending.pop(call_id, None)
        if not ok:
            raise value
        return value

    async def _read(self) -> None:
        try:
            while True:
                length, call_id = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                if length > MAX_FRAME:
                    raise SocketGone(f"an answer of {length} bytes, over {MAX_FRAME}")
                data = await self._reader.readexactly(length)
                answer = self._pending.get(call_id)
                if answer is None or answer.done():
                    continue  # its caller went away
                try:
                    answer.set_result(pickle.loads(data))  # from the shard's own user: see the module's note
                except Exception as exc:  # never from a shard of this version: made again through Ray
                    answer.set_exception(SocketGone(f"an answer that does not unpickle: {exc}"))
        except asyncio.CancelledError:
            self._end(SocketGone("closed by this gateway"))
            raise
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._end(exc)

    def _end(self, why: BaseException) -> None:
        self.closed = why
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(SocketGone(f"shard socket closed: {why}"))
        self._pending.clear()
        self._writer.close()

    def close(self) -> None:
        self._task.cancel()
        if self.closed is None:
            self._end(SocketGone("closed by this gateway"))
