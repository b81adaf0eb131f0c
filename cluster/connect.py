"""The only reader of RAY_ADDRESS: which Ray cluster a sweep joins, checked before joining."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def ray_address(cli_address: str | None) -> str | None:
    """`--address` first, then RAY_ADDRESS; None means an embedded single-node Ray."""
    address = cli_address or os.environ.get("RAY_ADDRESS") or None
    return None if address in (None, "", "local") else address


def check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Fail fast with one clear line instead of Ray's long retry loop on a dead address."""
    if address is None or address == "auto":  # `auto` is resolved by Ray (sweep.engine.raystart)
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:  # a port that is not a number
        host, port = None, None
    if not host or not port:
        raise ValueError(
            f"--address {address!r} is not HOST:PORT or ray://HOST:PORT (e.g. 127.0.0.1:6379); "
            "leave it out for a local Ray."
        )
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ValueError(
            f"--address {address!r} is unreachable ({exc.strerror or exc}); start the cluster "
            "(`ray start --head`) or leave --address out for a local Ray."
        ) from None
