"""Peak memory of ``aesthetic serve`` for a normal request and for hostile ones under the request budget.

    PYTHONPATH=. .venv/bin/python benchmarks/serve_memory.py [--model DIR]

Starts the real server (``python -m aesthetic_platform.cli serve``, the tiny random model
unless ``--model`` names a saved one) and sends, one after the other:

* ``normal``: four 1024x768 JPEG photos;
* ``bombs_refused``: four 1-bit PNGs of 12000x12000 (about 17 KB each, 144 million pixels
  each), refused from their headers;
* ``worst_within_budget``: what the default budget still lets through at its most
  expensive: RGBA PNGs of exactly ``max_image_pixels`` each, up to ``max_total_pixels``.

For each it prints the server's peak resident memory (``VmHWM``, reset before each
request through ``/proc/<pid>/clear_refs``) and its rise over the idle server, as one
JSON object. Linux only.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx
from PIL import Image

from aesthetic_platform.serving import RequestLimits

MIB = 1024 * 1024
START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 300
GRAY, RGBA = 0, 6  # PNG colour types


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png(width: int, height: int, bit_depth: int, colour_type: int, bytes_per_row: int) -> bytes:
    """A valid PNG of one flat colour (all zero bytes), compressed row by row: tiny file, huge canvas."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + bytes_per_row)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def photo_jpeg(size: tuple[int, int]) -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("server did not start")


def scenarios(limits: RequestLimits) -> dict[str, list[tuple[str, bytes]]]:
    side = math.isqrt(limits.max_image_pixels)
    worst = flat_png(side, side, 8, RGBA, side * 4)
    bomb = flat_png(12_000, 12_000, 1, GRAY, 12_000 // 8)
    normal = photo_jpeg((1024, 768))
    count_worst = max(1, min(limits.max_files, limits.max_total_pixels // (side * side)))
    return {
        "normal": [(f"photo{i}.jpg", normal) for i in range(4)],
        "bombs_refused": [(f"bomb{i}.png", bomb) for i in range(4)],
        "worst_within_budget": [(f"canvas{i}.png", worst) for i in range(count_worst)],
    }


def declared_pixels(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return image.width * image.height


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="saved model folder (default: the tiny model, random weights)")
    args = parser.parse_args(argv)
    limits = RequestLimits()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            from aesthetic_platform.model.config import named_config
            from aesthetic_platform.model.scorer_model import AestheticScorer

            model = str(AestheticScorer(named_config("tiny")).save_pretrained(Path(scratch) / "model"))
        port = free_port()
        env = {**os.environ, "AESTHETIC_HOME": str(Path(scratch) / "home")}
        command = [sys.executable, "-m", "aesthetic_platform.cli", "serve", "--model", model, "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        report: dict = {"benchmark": "serve_memory", "limits": limits.as_dict(), "scenarios": {}}
        try:
            wait_until_up(url, server)
            requests = scenarios(limits)
            warm = httpx.post(f"{url}/score", files=[("files", requests["normal"][0])], data={"prompt": "warm up"}, timeout=60)
            warm.raise_for_status()
            reset_peak(server.pid)
            time.sleep(0.2)
            idle = rss_peak_mb(server.pid)
            report["idle_rss_mb"] = round(idle, 1)
            for name, files in requests.items():
                reset_peak(server.pid)
                started = time.perf_counter()
                reply = httpx.post(
                    f"{url}/score", files=[("files", f) for f in files], data={"prompt": "a poster"}, timeout=REQUEST_TIMEOUT_S
                )
                seconds = time.perf_counter() - started
                peak = rss_peak_mb(server.pid)
                report["scenarios"][name] = {
                    "status": reply.status_code,
                    "answer": reply.json().get("detail") if reply.status_code != 200 else "scored",
                    "files": len(files),
                    "request_bytes": sum(len(data) for _, data in files),
                    "declared_pixels": sum(declared_pixels(data) for _, data in files),
                    "peak_rss_mb": round(peak, 1),
                    "peak_over_idle_mb": round(peak - idle, 1),
                    "seconds": round(seconds, 2),
                }
            report["health_after"] = httpx.get(f"{url}/health", timeout=10).json()["status"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
