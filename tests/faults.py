"""A loopback TCP proxy that injects faults between the platform and a dependency
(telemetry's PostgreSQL, Redis, an OTLP endpoint): it passes bytes through, refuses new
connections, black-holes (accepts and never answers; established connections stall) or
slows every chunk down. Switch modes while traffic runs: ``proxy.mode = "blackhole"``.
"""

import select
import socket
import threading
import time

MODES = ("pass", "refuse", "blackhole", "slow")


class FaultProxy:
    def __init__(self, target_host, target_port, slow_seconds=0.2):
        self.target = (target_host, target_port)
        self.slow_seconds = slow_seconds
        self.mode = "pass"
        self.accepted = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port = self._server.getsockname()[1]
        self._closed = False
        self._sockets = []
        threading.Thread(target=self._accept_loop, daemon=True, name="fault-proxy").start()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "refuse":
                # What a stopped server gives: the connection is reset at once.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        self._sockets.append(upstream)
        pairs = {client: upstream, upstream: client}
        try:
            while not self._closed:
                readable, _, _ = select.select(list(pairs), [], [], 0.2)
                for source in readable:
                    while self.mode == "blackhole" and not self._closed:
                        time.sleep(0.05)  # hold the bytes: the peer waits forever
                    data = source.recv(65536)
                    if not data:
                        return
                    if self.mode == "slow":
                        time.sleep(self.slow_seconds)
                    pairs[source].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self):
        self._closed = True
        self._server.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
