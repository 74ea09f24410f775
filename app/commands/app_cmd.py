"""`hybrid app`: start the Streamlit app with its bind address and security options taken from the
project's settings (``serve.*``), never from a ``.streamlit/config.toml`` in whatever folder the
command runs in. Loopback by default; another address needs ``serve.allow_remote`` and prints a
warning, because the app has no login.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from app.commands.args import positive_int
from app.settings import Settings
from domain.errors import ConfigError

APP_SCRIPT = Path(__file__).resolve().parents[1] / "streamlit_app.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the web app (127.0.0.1 unless settings allow another address)")
    p.add_argument("--host", default=None, help="bind address (default: settings.serve.host)")
    p.add_argument("--port", type=positive_int, default=None, help="port (default: settings.serve.port)")
    p.set_defaults(func=run_app)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool) -> None:
    """Raise unless ``host`` is loopback or another address is explicitly allowed.

    Raises:
        ConfigError: a non-loopback address without ``allow_remote``.
    """
    if not host.strip():
        raise ConfigError(
            "the bind address is empty — use 127.0.0.1 (or a named address with serve.allow_remote)"
        )
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"binding {host!r} would open the app, which has no login, to other machines — "
            "set HYBRID_SERVE__ALLOW_REMOTE=true to do it anyway, or use 127.0.0.1"
        )


def streamlit_command(host: str, port: int) -> list[str]:
    """The full `streamlit run` command line with every security-relevant option spelled out."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.enableCORS",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--browser.serverAddress",
        host,
        "--client.toolbarMode",
        "viewer",
    ]


def run_app(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host if args.host is not None else settings.serve.host
    port = args.port or settings.serve.port
    check_bind(host, allow_remote=settings.serve.allow_remote)
    if not is_loopback(host):
        print(
            f"warning: the app listens on {host}:{port} and has no login — anyone who reaches it can use it",
            file=sys.stderr,
        )
    print(f"Hybrid Assistant on http://{host}:{port} (workspace {settings.ws.root})", file=sys.stderr)
    sys.stderr.flush()
    command = streamlit_command(host, port)
    os.execv(command[0], command)  # the app replaces this process, so signals reach Streamlit
    return 0  # not reached
