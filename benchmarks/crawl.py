"""Crawl throughput against the local fixture gallery site, at 1 and 8 concurrent requests per host.

Serves ``--works`` ordinary works (list pages of 10, a detail page and a PNG per work)
on 127.0.0.1 with ``--latency`` seconds added to every response (a stand-in for the
network), crawls it from scratch once per ``--per-host`` setting with the per-host
rate limit at ``--rate`` requests/s, and prints JSON: pages/s, images/s, requests,
wall time and the most requests the site saw in flight at once.

    PYTHONPATH=. python benchmarks/crawl.py [--works 60] [--latency 0.05] [--rate 1000] [--per-host 1 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

from aesthetic_platform.ingest import CrawlConfig, CrawlSource
from aesthetic_platform.ingest.crawl import crawl
from aesthetic_platform.paths import DataRoot
from tests.fixtures.crawl_site import SiteState, running_site


def measure(works: int, latency: float, rate: float, per_host: int) -> dict:
    state = SiteState(works=works, per_page=10, specials=False, latency_s=latency)
    with running_site(state) as site, tempfile.TemporaryDirectory(prefix="crawl-bench-") as home:
        root = DataRoot.from_env(home).ensure()
        config = CrawlConfig(
            requests_per_second_per_host=rate, max_concurrency_per_host=per_host, max_concurrency=max(8, per_host), min_image_side=32
        )
        started = time.perf_counter()
        report = crawl(root, CrawlSource(name="bench", kind="gallery", start_urls=[site.start_url]), config)
        wall = time.perf_counter() - started
    assert report.images_stored == works, report.summary()
    return {
        "per_host": per_host,
        "pages": report.pages_fetched,
        "images": report.images_stored,
        "requests": report.requests,
        "wall_s": round(wall, 3),
        "pages_per_s": round(report.pages_fetched / wall, 2),
        "images_per_s": round(report.images_stored / wall, 2),
        "max_in_flight_seen_by_site": state.max_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every response")
    parser.add_argument("--rate", type=float, default=1000.0, help="per-host rate limit, requests/s")
    parser.add_argument("--per-host", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    results = [measure(args.works, args.latency, args.rate, n) for n in args.per_host]
    print(json.dumps(
        {"works": args.works, "latency_s": args.latency, "rate_per_host": args.rate, "python": platform.python_version(), "runs": results},
        indent=2,
    ))


if __name__ == "__main__":
    main()
