"""Block network access from Python, except to this machine (loopback and unix sockets).

The course promises that nothing is downloaded at run time. The test suite proves it: with
``FORGETKIT_BLOCK_NETWORK=1`` and this folder on ``PYTHONPATH``, ``sitecustomize.py`` calls
:func:`install` in every Python process that starts, notebook kernels included, and any attempt
to reach another host raises :class:`NetworkBlockedError` ("network access blocked during tests:
...") instead of hanging or silently downloading.

What stays allowed: unix sockets and every socket family other than IPv4/IPv6 (netlink, ...),
and IPv4/IPv6 addresses that are loopback (127.0.0.0/8, ::1, ::ffff:127.x) or unspecified
(0.0.0.0, ::, which the kernel routes to this host). Jupyter needs this: the server, its kernels
and the browser talk over 127.0.0.1. Name lookups are allowed only for ``localhost`` names, IP
literals of those addresses and this machine's own host name.

Only Python-level sockets are guarded; C libraries that open their own sockets (libzmq, libcurl)
are not, which is fine here: ZeroMQ carries kernel messages over loopback only.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ENV_VAR = "FORGETKIT_BLOCK_NETWORK"
MESSAGE = "network access blocked during tests"
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

_original: dict[str, object] = {}


class NetworkBlockedError(OSError):
    """Raised instead of connecting to (or looking up) a host other than this machine."""


class LookupBlockedError(NetworkBlockedError, socket.gaierror):
    """A blocked name lookup; also a ``socket.gaierror`` for code that catches only that."""


def enabled_by_env() -> bool:
    """True when ``FORGETKIT_BLOCK_NETWORK`` is set to something other than ``""``/``0``."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def is_installed() -> bool:
    return bool(_original)


def _is_local_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_loopback or ip.is_unspecified


def _is_local_host(host: object) -> bool:
    """True for a host (name, IP literal, bytes, None) that can only mean this machine."""
    if host is None:
        return True  # getaddrinfo(None, port) gives the loopback or wildcard address
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna", errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("", *LOCAL_NAMES):
        return True
    if _is_local_ip(name):
        return True
    try:
        return name == socket.gethostname().lower()
    except OSError:
        return False


def _check_address(family: int, address: object) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets, netlink, ...: never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_local_host(host):
        raise NetworkBlockedError(f"{MESSAGE}: connect to {address!r}")


def _guarded_connect(self, address):
    _check_address(self.family, address)
    return _original["connect"](self, address)


def _guarded_connect_ex(self, address):
    _check_address(self.family, address)
    return _original["connect_ex"](self, address)


def _guarded_create_connection(address, *args, **kwargs):
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_local_host(host):
        raise NetworkBlockedError(f"{MESSAGE}: create_connection to {address!r}")
    return _original["create_connection"](address, *args, **kwargs)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local_host(host):
        raise LookupBlockedError(socket.EAI_NONAME, f"{MESSAGE}: name lookup of {host!r}")
    return _original["getaddrinfo"](host, *args, **kwargs)


def install() -> None:
    """Patch ``socket`` so that only this machine can be reached. Safe to call twice."""
    if _original:
        return
    _original.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        create_connection=socket.create_connection,
        getaddrinfo=socket.getaddrinfo,
    )
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.create_connection = _guarded_create_connection
    socket.getaddrinfo = _guarded_getaddrinfo


def uninstall() -> None:
    """Undo :func:`install`."""
    if not _original:
        return
    socket.socket.connect = _original["connect"]
    socket.socket.connect_ex = _original["connect_ex"]
    socket.create_connection = _original["create_connection"]
    socket.getaddrinfo = _original["getaddrinfo"]
    _original.clear()
