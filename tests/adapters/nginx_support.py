"""A real nginx (the Debian package) on loopback as a reverse proxy, for the long-poll proof.

Each run gets its own prefix directory, configuration, free port and logs; nginx runs in the
foreground (``daemon off``, ``master_process off``: one process, as the user who started it,
writing only inside the prefix) and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests._processes import stop

TIMEOUT = 10.0

#: Streaming-friendly: what a proxy in front of an event stream should do.
FRIENDLY = """
            proxy_buffering off;
            proxy_cache off;
"""

#: A corporate buffering proxy: holds responses in buffers large enough for many events,
#: ignores the X-Accel-Buffering: no that asks it not to, and compresses what it relays.
#: (nginx 1.22 with ``proxy_buffering on`` alone still passes each upstream chunk on as it
#: comes -- measured: 30-byte events arrived 50 ms apart, as sent. What holds them is the
#: compressing stage, as in many gateways: it asks the upstream for identity, and its gzip
#: keeps everything in zlib's buffers, as no upstream chunk is marked for flushing.
#: ``postpone_output 0`` lets the response head through alone: the symptom the client
#: detects, a 200 text/event-stream head and then no body byte.)
BUFFERING = """
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 32 64k;
            proxy_busy_buffers_size 1m;
            proxy_ignore_headers X-Accel-Buffering;
            proxy_set_header Accept-Encoding "";
            gzip on;
            gzip_proxied any;
            gzip_types text/event-stream application/json;
            gzip_buffers 32 64k;
            postpone_output 0;
"""


def nginx_binary() -> str | None:
    """The nginx executable, or ``None`` when it is not installed."""
    found = shutil.which("nginx")
    if found is not None:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(prefix: Path, port: int, upstream: tuple[str, int], location: str) -> str:
    """nginx.conf for a reverse proxy on 127.0.0.1:``port`` in front of ``upstream``:
    ``location`` is either directives for one ``location /`` block, or whole ``location``
    blocks proxying to ``http://app`` (the docs' examples), which becomes ``upstream``."""
    temp = {name: prefix / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    host, upstream_port = upstream
    if location.lstrip().startswith(("#", "location")):
        locations = location.replace("http://app;", f"http://{host}:{upstream_port};")
    else:
        locations = f"""
        location / {{
            proxy_pass http://{host}:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 60s;
{location}
        }}"""
    return f"""
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""


@contextlib.contextmanager
def running_nginx(
    prefix: Path, upstream: tuple[str, int], location: str
) -> Iterator[tuple[str, int]]:
    """Run nginx in front of ``upstream`` with ``location``'s directives; yield its address.

    Raises:
        FileNotFoundError: nginx is not installed.
        AssertionError: it exited or did not listen within TIMEOUT.
    """
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (.ci/peers.sh installs it)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(config_text(prefix, port, upstream, location))
    out = prefix / "nginx.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=sink, stderr=sink,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert process.poll() is None, f"nginx exited:\n{out.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nginx did not listen:\n{out.read_text()}"
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        stop(process, TIMEOUT)


def docs_locations(page: Path) -> dict[str, str]:
    """The ``.. code-block:: nginx`` examples of a docs page, by their first line's comment
    (``"one path"``, ``"two paths"``)."""
    blocks: dict[str, str] = {}
    lines = page.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: nginx":
            continue
        body: list[str] = []
        for text in lines[number + 2 :]:
            if text and not text.startswith("    "):
                break
            body.append(text)
        name = body[0].strip().lstrip("# ").split(":")[0]
        blocks[name] = "\n".join(body)
    return blocks


def requests_logged(prefix: Path) -> list[str]:
    """The request lines nginx logged (its access log)."""
    log = prefix / "access.log"
    return log.read_text().splitlines() if log.exists() else []
