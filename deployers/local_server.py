"""The child process of a local deployment: a model server, watched over.

    python -m fmb.deployers.local_server llamacpp --model M.gguf [--threads N --parallel N --context-size N]
    python -m fmb.deployers.local_server command -- llama-server -m M.gguf --port 8080

``llamacpp`` serves llama.cpp's OpenAI-compatible API, and its Prometheus metrics at
``/metrics``, in this process through xllamacpp and, once it accepts requests, writes its
base URL (``http://HOST:PORT``) to ``--ready-file``. ``command`` runs any
server command line as its own child. With ``--parent-pid`` the process exits (and stops
its child) as soon as that parent is gone, so a killed fmb never leaves a server behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable


def _watch_parent(parent_pid: int, on_gone: Callable[[], None]) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.25)
        on_gone()

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def _serve_llamacpp(args: argparse.Namespace) -> int:
    try:
        import xllamacpp
    except ImportError:
        print("xllamacpp is not installed; install fmb's local extra: pip install -e '.[local]'", flush=True)
        return 3
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.parallel
    params.n_ctx = args.context_size * args.parallel  # llama.cpp splits the context between its slots
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    params.port = args.port
    params.hostnames = [args.host]
    # llama.cpp's Prometheus page (llama-server --metrics), scraped into raw/server_metrics.
    params.endpoint_metrics = True
    server = xllamacpp.Server(params)
    print(f"fmb local server listening on {server.listening_address}", flush=True)  # for the log's reader
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(server.listening_address)
        os.replace(tmp, args.ready_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.parent_pid:
        _watch_parent(args.parent_pid, stop.set)
    stop.wait()
    return 0


def _run_command(args: argparse.Namespace) -> int:
    child = subprocess.Popen(args.command)

    def stop(*_: object) -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())
    if args.parent_pid:
        _watch_parent(args.parent_pid, stop)
    return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmb.deployers.local_server", description=__doc__)
    parser.add_argument("--parent-pid", type=int, default=None)
    sub = parser.add_subparsers(dest="server", required=True)
    llama = sub.add_parser("llamacpp")
    llama.add_argument("--model", required=True)
    llama.add_argument("--host", default="127.0.0.1")
    llama.add_argument("--port", type=int, default=0)
    llama.add_argument("--threads", type=int, default=None)
    llama.add_argument("--parallel", type=int, default=1)
    llama.add_argument("--context-size", type=int, default=4096)
    llama.add_argument("--ready-file", default=None, help="Where to write the server's base URL once it listens.")
    command = sub.add_parser("command")
    command.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.server == "command":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            parser.error("command: give the server's command line after --")
        return _run_command(args)
    return _serve_llamacpp(args)


if __name__ == "__main__":
    sys.exit(main())
