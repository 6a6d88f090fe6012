"""The gateway's access log (`chatrelay up --access-log`): one line per call, its method,
the peer's address as the gateway saw it, and its status, in access.log in the data dir.
Off by default: a relay that keeps no addresses has none to give away. It is what shows
an operator, and a test, whose address a call came from (a forwarded one: the
forwarding relay's, cluster/forwarder.py). Each gateway of a node writes a file of its
own (`access.log`, then `access-1.log`, …): several processes cannot rotate one file."""

from __future__ import annotations

import logging
import logging.handlers
import pathlib

import grpc

FILE = "access.log"
KEEP_BYTES = 64 * 1024 * 1024  # then one older file is kept


def file_name(index: int = 0) -> str:
    """The access log of a node's `index`th gateway."""
    return FILE if index == 0 else FILE.replace(".log", f"-{index}.log")


def open_log(data_dir: str, index: int = 0) -> logging.Logger:
    logger = logging.getLogger("chatrelay.access")
    if not logger.handlers:
        handler = logging.handlers.RotatingFileHandler(
            pathlib.Path(data_dir) / file_name(index), maxBytes=KEEP_BYTES, backupCount=1)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class AccessLog(grpc.aio.ServerInterceptor):
    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        method, log = details.method.rpartition("/")[2], self.log

        def done(context) -> None:
            code = context.code() or grpc.StatusCode.OK
            log.info("%s %s %s", method, context.peer(), code.name)

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary(request, context):
                try:
                    return await inner(request, context)
                finally:
                    done(context)
            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def stream(request, context):
                try:
                    async for item in inner_stream(request, context):
                        yield item
                finally:
                    done(context)
            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        return handler
