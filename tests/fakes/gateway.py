"""The real gateway ASGI app under uvicorn, on a loopback port, in a background thread."""

from __future__ import annotations

import threading
import time

import uvicorn

from tests.fakes.server import free_socket


class GatewayServer:
    def __init__(self) -> None:
        from gateway_project.asgi import application

        self._sock = free_socket()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        from apps.core.server import uvicorn_options

        config = uvicorn.Config(
            application,
            loop="asyncio",
            log_level="warning",
            timeout_graceful_shutdown=5,
            **uvicorn_options(),
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True, name="gateway"
        )

    def start(self) -> "GatewayServer":
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(20)
        self._sock.close()
