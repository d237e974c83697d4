"""Per-request streams under uvicorn: sse_core's StreamResponse vs sse-starlette's
EventSourceResponse (a benchmark, not a test).

One uvicorn process (subprocess, loopback) serves both from one Starlette app; httpx reads
the raw body. Figures: for one long stream, events/s and the server's CPU per event; for many
short streams one after the other, streams/s and the server's CPU per stream. Server CPU is
read from /proc (utime + stime of the uvicorn process), so Linux only.

    python benchmarks/bench_responses.py [--events 50000] [--streams 300] [--gzip]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

APP = textwrap.dedent(
    """
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    from sse_core import ServerConfig
    from sse_core.adapters.asgi import StreamResponse

    CONFIG = ServerConfig(heartbeat_interval=15.0)

    async def tokens(n):
        for i in range(n):
            yield {"data": f"token {i}"}

    async def ours(request):
        return StreamResponse(tokens(int(request.query_params["n"])), config=CONFIG)

    async def theirs(request):
        return EventSourceResponse(tokens(int(request.query_params["n"])), ping=15)

    app = Starlette(routes=[Route("/sse_core", ours), Route("/sse_starlette", theirs)])
    """
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run both measurements for both responses and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument(
        "--gzip", action="store_true",
        help="send httpx's default Accept-Encoding (sse_core then compresses; sse-starlette "
        "never does); by default the client asks for identity",
    )
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_responses_{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    (workdir / "bench_app.py").write_text(APP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_app:app", "--port", str(port),
         "--log-level", "warning"],
        cwd=workdir, env={**os.environ, "PYTHONPATH": str(workdir)},
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        lines: dict[str, list[str]] = {}
        headers = {} if args.gzip else {"Accept-Encoding": "identity"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=60, headers=headers
        ) as client:
            for path in ("/sse_core", "/sse_starlette") * 2:  # the second round counts
                cpu, wall = cpu_seconds(server.pid), time.perf_counter()
                with client.stream("GET", path, params={"n": args.events}) as response:
                    size = sum(len(chunk) for chunk in response.iter_raw())
                wall, cpu = time.perf_counter() - wall, cpu_seconds(server.pid) - cpu
                long_line = (f"{path:15} one stream: {args.events / wall:8.0f} events/s, "
                             f"server {cpu / args.events * 1e6:5.1f} us CPU/event ({size} B)")
                cpu, wall = cpu_seconds(server.pid), time.perf_counter()
                for _ in range(args.streams):
                    client.get(path, params={"n": 10}).raise_for_status()
                wall, cpu = time.perf_counter() - wall, cpu_seconds(server.pid) - cpu
                short_line = (f"{'':15} short streams: {args.streams / wall:6.0f} streams/s, "
                              f"server {cpu / args.streams * 1e3:5.2f} ms CPU/stream")
                lines[path] = [long_line, short_line]  # the second round's stay
        for path_lines in lines.values():
            print(*path_lines, sep="\n")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
