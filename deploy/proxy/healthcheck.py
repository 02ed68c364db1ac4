"""The proxy's healthcheck: the dashboard's /healthz through Caddy, over TLS, by the site's name
(Caddy picks the certificate by SNI and the route by Host) on this container's own port."""

import http.client
import os
import socket
import ssl
import sys


class LocalHTTPS(http.client.HTTPSConnection):
    """HTTPS to `host` by name, connected to 127.0.0.1 (the name may not resolve in here)."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


# Not verified: this checks the listener and the route; clients check the certificate.
connection = LocalHTTPS(
    os.environ.get("HTTPS_SITE", "localhost"),
    8443,
    timeout=2,
    context=ssl._create_unverified_context(),
)
connection.request("GET", "/healthz")
sys.exit(0 if connection.getresponse().status == 200 else 1)
