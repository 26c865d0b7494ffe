"""A TCP proxy between the poller and Dovecot that injects faults on command.

Modes: ``pass``; ``reset`` (RST the client after ``after`` bytes from the server); ``stall`` (stop
forwarding after ``after`` bytes, keep the socket open); ``bye`` (after ``after`` bytes send an
unexpected ``* BYE`` and close). Counts the bytes it carries each way (the benchmarks use that).
Bounded: loopback only, stops with ``close()``.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    target_port: int
    mode: str = "pass"
    after: int = 0
    port: int = 0
    _server: socket.socket = field(init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)
    bytes_up: int = 0
    bytes_down: int = 0

    def __post_init__(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            mode, after = self.mode, self.after
            threading.Thread(target=self._pipe, args=(client, upstream, "pass", 0, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, mode, after, "down"), daemon=True).start()

    def _count(self, direction: str, size: int) -> None:
        if direction == "up":
            self.bytes_up += size
        else:
            self.bytes_down += size

    def _pipe(self, source: socket.socket, sink: socket.socket, mode: str, after: int, direction: str) -> None:
        sent = 0
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if mode != "pass" and sent + len(data) > after:
                    head = data[: max(after - sent, 0)]
                    if head:
                        sink.sendall(head)
                    if mode == "reset":
                        sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sink.close()
                        return
                    if mode == "bye":
                        sink.sendall(b"\r\n* BYE Server shutting down\r\n")
                        sink.close()
                        return
                    if mode == "stall":
                        self._stop.wait(30)  # hold the connection open, forward nothing
                        return
                sink.sendall(data)
                sent += len(data)
                self._count(direction, len(data))
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def drop_all(self) -> None:
        """Cut every connection made so far (a network drop); new connections still pass.
        shutdown() first: on Linux a close() does not wake a thread blocked in recv() on it."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        for sock in [self._server, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass
