"""The 127.0.0.1 port a command serves on (demo --serve, loadtest, terminate_under_load).

A given port is tried before the command does anything: taken, the command stops at once with one line, rather
than after a minute of work — or, for the load commands, driving requests at whatever else answers there.
"""

import socket

from django.core.management.base import CommandError


def usable(port, option="--port"):
    """The port, once a server could listen on it now; else a CommandError naming the option."""
    if not 1 <= port <= 65535:
        raise CommandError(f"{option}: {port} is not between 1 and 65535")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver and gunicorn bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CommandError(f"{option}: cannot listen on 127.0.0.1:{port} ({exc.strerror}); give another") from None
    return port


def free():
    """A port nothing listens on now, chosen by the kernel."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
