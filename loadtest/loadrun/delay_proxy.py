"""Distance as test equipment: a TCP proxy that puts a one-way delay on every byte in both directions, so
an origin on loopback answers as if it were far away (this kernel has no netem).

Each chunk is forwarded `delay_s` after it arrived, in order, without waiting for the chunks before it
to have been forwarded first: the delay is latency, not a bandwidth cap. Opening a connection costs one
round trip too (a far origin's TCP handshake), before the first byte is forwarded."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy reader to writer, each chunk `delay_s` after it was read."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    delivery = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((time.monotonic() + delay_s, data))
        queue.put_nowait((time.monotonic() + delay_s, b""))
        await delivery
    except (OSError, asyncio.IncompleteReadError):
        delivery.cancel()


class DelayProxy:
    """Listens on a free loopback port (`port`) and forwards to `target` (host, port) with `delay_s` each
    way, from a thread of its own so synchronous code (a browser driver) can use it."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        self.target, self.delay_s = target, delay_s
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="delay-proxy")

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(2 * self.delay_s)  # the far side's handshake: one round trip
            origin_reader, origin_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(_pipe(client_reader, origin_writer, self.delay_s),
                                 _pipe(origin_reader, client_writer, self.delay_s))
        finally:
            for writer in (origin_writer, client_writer):
                writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop accepting, then end the connections still open (a browser's or nginx's idle keep-alives)."""
        self._server.close()
        connections = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

