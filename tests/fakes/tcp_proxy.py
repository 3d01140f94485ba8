"""A TCP proxy on loopback that a test can cut and restore: a real outage of the server behind
it (PostgreSQL here), as the client sees one: live connections reset, new ones refused."""

from __future__ import annotations

import asyncio
import threading

from tests.fakes.server import free_socket


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with free_socket() as sock:
            self.port = sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="tcp-proxy")
        self.connections = 0

    def _run(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> "CuttableProxy":
        self._thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        async def listen():
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self._run(listen())

    def cut(self) -> None:
        """Stop listening (new connections are refused) and reset every live connection."""
        async def cut():
            self._server.close()
            await self._server.wait_closed()
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        self._run(cut())

    def stop(self) -> None:
        self.cut()

        async def settle():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._run(settle())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _serve(self, client_reader, client_writer) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()
                self._writers.discard(writer)

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
