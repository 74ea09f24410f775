"""`hybrid serve`: the OpenAI-compatible API (``app.serve``) on uvicorn. Loopback by default; any
other address needs an API key (``HYBRID_SERVE__API_KEY``), because the API answers from the
collections' documents."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.commands.app_cmd import is_loopback
from app.commands.args import add_collection, positive_int
from app.settings import Settings
from domain.errors import ConfigError

if TYPE_CHECKING:
    from app.serve import Server


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="answer over an OpenAI-compatible HTTP API (127.0.0.1 unless a key is set)"
    )
    add_collection(p)
    p.add_argument("--host", default=None, help="bind address (default: settings.serve.host)")
    p.add_argument("--port", type=positive_int, default=None, help="port (default: settings.serve.api_port)")
    p.set_defaults(func=run_serve)


def api_key(settings: Settings) -> str | None:
    key = settings.serve.api_key
    return key.get_secret_value() if key is not None and key.get_secret_value() else None


def check_api_bind(host: str, key: str | None) -> None:
    """Raise unless ``host`` is loopback or requests need a key.

    Raises:
        ConfigError: an empty address, or another address without a key.
    """
    if not host.strip():
        raise ConfigError("the bind address is empty — use 127.0.0.1")
    if not is_loopback(host) and key is None:
        raise ConfigError(
            f"binding the API to {host!r} would let other machines read your documents through it — "
            "set HYBRID_SERVE__API_KEY to require a key, or use 127.0.0.1"
        )


def build_server(settings: Settings) -> Server:
    """The request handling over the collections of ``settings`` (the selected one by default)."""
    from app.serve import Pipelines, Server
    from app.wiring.answer import build_assistant
    from app.wiring.collections import collection_names, get_collection, with_collection

    default = get_collection(settings).name
    pipelines = Pipelines(lambda name: build_assistant(with_collection(settings, name)))
    return Server(pipelines, lambda: collection_names(settings), default)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.serve import create_app

    host = args.host if args.host is not None else settings.serve.host
    port = args.port or settings.serve.api_port
    key = api_key(settings)
    check_api_bind(host, key)
    app = create_app(build_server(settings), api_key=key, max_request_bytes=settings.serve.max_request_bytes)
    print(f"OpenAI-compatible API on http://{host}:{port}/v1 (workspace {settings.ws.root})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0
