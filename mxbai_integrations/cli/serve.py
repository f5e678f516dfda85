"""``mxbai-onnx serve``: the Cohere / TEI rerank HTTP API over one model (extra ``serve``; ``--ray``: extra ``ray``).

The port is bound before anything is announced: a busy port or a privileged one is one line and
exit status 2, and "serving ... on http://..." is printed only once the socket is ours.
"""

from __future__ import annotations

import argparse
import errno
import socket
from dataclasses import asdict

from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import note
from mxbai_integrations.cli.errors import EXIT_OK, UsageError
from mxbai_integrations.options import RerankerOptions, dataclass_from_cli
from mxbai_integrations.serve.config import BatchOptions, ServeLimits, ServerOptions

RAY_ONLY = ("replicas", "num_gpus", "ray_address")


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (SO_REUSEADDR, not yet listening), or a UsageError saying why not."""
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host: cannot listen on {host!r} ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = url(host, port)
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port: {where} is already in use (another server is listening there); "
                             "stop it or choose another --port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(f"--port: no permission to listen on {where} (ports below 1024 need privileges); "
                             "choose another --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host: {host!r} is not an address of this machine") from None
        raise
    return sock


def _serve_ray(args: argparse.Namespace, options: RerankerOptions, limits: ServeLimits,
               batching: BatchOptions) -> int:
    preflight.require(preflight.EXTRA_MODULES["ray"], "`mxbai-onnx serve --ray`", "ray")
    # Ray's HTTP proxy binds the port itself; binding it here once first turns a busy port into one line.
    bind(args.host, args.port).close()
    from mxbai_integrations.serve.ray_serve import build_app, run_ray_server

    gpus = {"num_gpus": args.num_gpus} if args.num_gpus else None
    app = build_app(args.model, reranker_options=options.to_dict(only_changed=True), limits=limits,
                    batching=batching, num_replicas=args.replicas, ray_actor_options=gpus)
    note(f"serving {args.model} with Ray Serve on {url(args.host, args.port)}")
    run_ray_server(app, host=args.host, port=args.port, address=args.ray_address)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Bind the port, load the model (a bad model is one line, exit 2), announce, serve until SIGINT/SIGTERM."""
    preflight.require(preflight.EXTRA_MODULES["serve"], "`mxbai-onnx serve`", "serve")
    given = [name for name in RAY_ONLY if getattr(args, name) not in (None, 0.0)]
    if given and not args.ray:
        raise UsageError(f"--{given[0].replace('_', '-')} needs --ray")
    options = RerankerOptions.from_cli(args)
    limits = dataclass_from_cli(ServeLimits, args)
    batching = dataclass_from_cli(BatchOptions, args, **({"max_batch_requests": 1} if args.no_batching else {}))
    server = dataclass_from_cli(ServerOptions, args)
    if args.ray:
        return _serve_ray(args, options, limits, batching)
    from mxbai_integrations import MxbaiReranker
    from mxbai_integrations.serve.app import create_app, run_server

    sock = bind(args.host, args.port)
    try:
        reranker = MxbaiReranker(args.model, options=options)
        app = create_app(reranker, limits=limits, batching=batching)
        note(f"serving {reranker.model_id} ({reranker.family} {reranker.manifest.dtype}, {reranker.providers[0]}) "
             f"on {url(args.host, args.port)}")
        run_server(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning", sock=sock,
                   **asdict(server))
    finally:
        sock.close()
    return EXIT_OK
