"""One HTTP server under comparison in `web_bench.py`, serving the app from its factory
(`web.app:app_from_env`; settings from the environment) with N worker processes.

    python bench/_web_server.py {uvicorn-h11|uvicorn-httptools|granian} PORT WORKERS

uvicorn-h11: uvicorn on h11 and asyncio (what `serve` ran before), with the header deadline.
uvicorn-httptools: uvicorn on httptools and uvloop (what `serve` runs now), same deadline.
granian: granian (Rust, hyper) on its ASGI interface, header read timeout HEADER_TIMEOUT_S.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chainlens.settings import load_settings
from web.server import HeaderDeadlineProtocol, protocol_class

_settings = load_settings()
# Module-level classes: uvicorn's worker processes import them by name.
H11 = type("H11", (HeaderDeadlineProtocol,), {"header_timeout_s": _settings.header_timeout_s})
HTTPTOOLS = protocol_class(_settings)


def main(kind: str, port: int, workers: int) -> None:
    target = "web.app:app_from_env"
    if kind == "granian":
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings
        from granian.server import Server

        Server(
            target,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            http="1",
            websockets=False,  # type: ignore[arg-type]
            log_enabled=False,
            http1_settings=HTTP1Settings(
                header_read_timeout=int(_settings.header_timeout_s * 1000)
            ),
        ).serve()
        return
    import uvicorn

    http, loop = (
        ("_web_server:H11", "asyncio")
        if kind == "uvicorn-h11"
        else ("_web_server:HTTPTOOLS", "uvloop")
    )
    uvicorn.run(
        target,
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        http=http,
        loop=loop,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
