"""Redis connections whose commands are written without a task when the socket takes them at once.

redis-py (``redis.asyncio``) writes every command under ``asyncio.wait_for(..., socket_timeout)``, which on
Python 3.11 wraps the write in a new task plus a timer: one task per Redis command, about a sixth of the
Python work of a command. The timeout only matters when the write has to wait (the socket's buffer is
full). :func:`quick_send_class` derives a connection class that writes the command and returns at once
when the transport sent it all (nothing left in its buffer), and otherwise waits for it under the same
timeout as redis-py. Errors are handled as redis-py does (the connection is dropped and a
``ConnectionError`` / ``TimeoutError`` raised). Used by :class:`~router.ledger.deferred.DeferredRedisStore`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_DERIVED: dict[type, type] = {}


def quick_send_class(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` with :meth:`send_packed_command` writing without a task when it can (one class per base)."""
    derived = _DERIVED.get(base)
    if derived is None:
        derived = _DERIVED[base] = type(f"QuickSend{base.__name__}", (base,), {"send_packed_command": _send_packed_command})
    return derived


async def _send_packed_command(self: AbstractConnection, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
    writer = self._writer
    if (
        writer is None
        or self._reader is None
        or isinstance(command, (str, bytes))
        or (check_health and self.health_check_interval)
        or writer.transport.is_closing()
        or self._reader.exception() is not None
    ):  # not connected yet, a health check due, a closing socket: redis-py's own path
        await AbstractConnection.send_packed_command(self, command, check_health)  # type: ignore[arg-type]
        return
    try:
        writer.writelines(command)
        if writer.transport.get_write_buffer_size():  # the socket did not take it all: wait, bounded
            await asyncio.wait_for(writer.drain(), self.socket_timeout)
    except asyncio.TimeoutError:
        await self.disconnect(nowait=True)
        raise RedisTimeoutError("Timeout writing to socket") from None
    except OSError as exc:
        await self.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while writing to socket. {exc}.") from exc
    except BaseException:
        await self.disconnect(nowait=True)
        raise
