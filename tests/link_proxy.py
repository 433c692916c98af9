"""A TCP relay standing in for a store's WAN link, which a test can cut and restore.

The store broker's bridge dials the relay instead of the central broker; ``cut()`` closes
every relayed connection and stops listening (the bridge's reconnects are refused, as on a
dead line), ``restore()`` listens on the same port again. Bytes pass untouched, so TLS
between the bridge and the central broker is end to end through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from storesense_tools.embedded_broker import free_port


class LinkProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.cuts = 0
        self.restore()

    def restore(self) -> None:
        """Listen (again) and relay every connection to the target."""
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self.port))
        server.listen(8)
        with self._lock:
            self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """The line goes dead: open connections drop, new ones are refused."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        self.cuts += 1
        for s in [*conns, *([server] if server else [])]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._server is not server:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
