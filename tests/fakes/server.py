"""Running an aiohttp or ASGI app on a loopback port in a background thread, for tests.

FakeServer is the base of the fake HTTP services (provider upstreams, Lago, Cohere).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Self

from aiohttp import web


def free_socket() -> socket.socket:
    """A socket bound to a free loopback port (close it to hand the port to another process)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class AiohttpThread:
    """An aiohttp.web application served on 127.0.0.1:<free port> from its own thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._sock = free_socket()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-upstream")
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._runner = web.AppRunner(
                self.app, handle_signals=False, access_log=None, shutdown_timeout=0.5
            )
            await self._runner.setup()
            site = web.SockSite(self._runner, self._sock)
            await site.start()
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> "AiohttpThread":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class FakeServer:
    """A fake HTTP service: an aiohttp app served on 127.0.0.1:<free port> from its own thread.

    A subclass adds its routes to `self.app` after calling __init__ and keeps its own state;
    starting, stopping and the URL are this class's.
    """

    def __init__(self, **app_options: Any) -> None:
        self.app = web.Application(**app_options)
        self._thread = AiohttpThread(self.app)
        self.url = self._thread.url
        self.loop = self._thread.loop  # the server's event loop, for waking a handler from another thread

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()
