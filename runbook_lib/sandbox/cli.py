"""`runbook sandbox build ...` and `python -m runbook_lib.sandbox build ...`.

Prints cargo-make-like progress lines; exit code 0 (PASS), 1 (FAIL: the build
went wrong), 2 (ERROR: the environment, or an interrupted build).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

from .. import paths
from . import scripts
from .builder import DEFAULT_PASSWORD, build
from .tasks import ALL_TASK, TASKS

PASSWORD_ENV = "SANDBOX_ROOT_PASSWORD"


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=ALL_TASK, choices=list(TASKS),
                   help=f"task to run with its dependencies (default {ALL_TASK})")
    p.add_argument("--workdir", default=None,
                   help=f"tree root that receives pxe/static/blobs/internal/x86_64 (default {paths.sandbox_workdir()})")
    p.add_argument("--force", action="store_true",
                   help="rebuild even when the inputs did not change (iPXE from source: make runs again in "
                        "its cached build tree and recompiles only what is stale; delete "
                        "<cache>/ipxe-build to start from scratch)")
    p.add_argument("--root-password", default=None,
                   help=f"root password of the image (default: ${PASSWORD_ENV} or '{DEFAULT_PASSWORD}'); "
                        "never printed")
    p.add_argument("--ipxe-source", default=None,
                   help="iPXE source to build ipxe.efi/ipxe.kpxe from, like carbide: a directory holding "
                        "src/, or a .tar.gz/.tgz/.tar.xz of one (default: apt-get source ipxe, then the "
                        "download of the commit carbide pins, else Debian's prebuilt iPXE)")
    p.add_argument("--no-ipxe-download", action="store_true",
                   help="do not try to download the pinned iPXE commit when no other source answers")
    p.add_argument("--port", type=int, default=scripts.DEFAULT_PORT,
                   help="port of carbide-pxe baked into the chain script (default 8080)")
    p.add_argument("--log", default=None, help="full log file (default <workdir>/logs/sandbox-build-*.log)")


def handle_build(args: argparse.Namespace) -> int:
    password = args.root_password or os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD
    if not 1 <= args.port <= 65535:
        print(f"[sandbox] ERROR - --port {args.port} is out of range 1..65535", file=sys.stderr)
        return 2

    def echo(line: str) -> None:
        print(line, flush=True)

    try:
        with _terminate_means_interrupt():
            result = build(args.task, args.workdir, force=args.force, root_password=password,
                           ipxe_source=args.ipxe_source, port=args.port, on_line=echo, log_path=args.log,
                           download=not args.no_ipxe_download)
    except KeyboardInterrupt:
        print("[sandbox] ERROR - interrupted; temporary files removed, no partial artifacts installed",
              flush=True)
        return 2
    print(str(result), flush=True)
    return result.status.exit_code


@contextlib.contextmanager
def _terminate_means_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP (a driver's timeout, a closed terminal) clean up like Ctrl-C.

    mkosi runs in its own process group, so killing ours alone would orphan it;
    turning the signal into KeyboardInterrupt lets the runner stop mkosi's group
    and the builder remove its temporary files.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `sandbox build` to the `runbook` command."""
    sandbox = subparsers.add_parser("sandbox", help="the embedded carbide-like pxe tree")
    sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    b = sub.add_parser("build", help="build the sandbox boot artifacts with mkosi and iPXE")
    add_build_arguments(b)
    b.set_defaults(func=handle_build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_lib.sandbox",
                                     description="Build the sandbox's carbide-like boot artifacts.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the sandbox boot artifacts with mkosi and iPXE")
    add_build_arguments(b)
    b.set_defaults(func=handle_build)
    args = parser.parse_args(argv)
    return int(args.func(args))
