"""The polite HTTP layer against the fixture site: rate, concurrency, robots, redirects, limits, retries."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import socketserver
import threading
import time
from urllib.parse import urlsplit

import pytest

from aesthetic_platform.ingest import Fetcher, FetchError, parse_retry_after
from aesthetic_platform.ingest.config import CrawlSource
from aesthetic_platform.ingest.crawl import crawl
from tests.fixtures.crawl_site import SiteState, running_site
from tests.ingest.conftest import fast_config

JITTER = 0.05  # seconds


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _fetch(config, coro_fn):
    async def main():
        async with Fetcher(config) as fetcher:
            return await coro_fn(fetcher)

    return asyncio.run(main())


def test_per_host_rate_and_concurrency_are_never_exceeded(plain_site, data_root):
    rate = 40.0
    source = CrawlSource(name="plain", kind="gallery", start_urls=[plain_site.start_url])
    report = crawl(data_root, source, fast_config(requests_per_second_per_host=rate, max_concurrency_per_host=3, max_concurrency=8))
    times = plain_site.state.times()
    assert report.images_stored == 30 and len(times) == report.requests == 1 + 3 + 30 + 30
    # Measured at the server, whose arrival times carry up to JITTER of scheduling delay (it shares the test
    # process): starts spaced 1/rate apart put at most (1 s + JITTER) * rate + 1 into any 1-second window,
    # and any 11 consecutive starts span at least 10 intervals less JITTER.
    assert _max_in_window(times, 1.0) <= (1.0 + JITTER) * rate + 1
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[10:], strict=False)]
    assert min(gaps) >= 10 / rate - JITTER, min(gaps)
    assert plain_site.state.max_in_flight <= 3


def test_the_rate_measurement_catches_a_fast_crawler(data_root):
    """The two measurements above fail for a crawler without the limits, and on a loaded machine too: no throughput
    floor, only start spacing and overlap. A 0.1 s response time keeps the unlimited crawler's requests overlapping
    however slowly its CPU runs, and each list page releases 10 detail pages plus the next list page at once."""
    with running_site(SiteState(works=30, per_page=10, specials=False, latency_s=0.1)) as fast_site:
        source = CrawlSource(name="plain", kind="gallery", start_urls=[fast_site.start_url])
        crawl(data_root, source, fast_config(requests_per_second_per_host=1000.0, max_concurrency_per_host=16, max_concurrency=16))
        times = sorted(fast_site.state.times())
        gaps = [b - a for a, b in zip(times, times[10:], strict=False)]
        assert min(gaps) < 10 / 40 - JITTER, min(gaps)  # the 11-start gap check above fails without the rate limit
        assert fast_site.state.max_in_flight > 3  # and the in-flight check fails without the concurrency cap


def test_robots_txt_is_obeyed_for_pages_images_and_user_agents(site):
    config = fast_config()

    async def probe(fetcher: Fetcher):
        results = {}
        for path in ("/private/p1.png", "/works/secret-1", "/works/w0001"):
            try:
                await fetcher.fetch(site.url(path), "page")
                results[path] = "fetched"
            except FetchError as exc:
                results[path] = exc.reason
        return results

    expected = {"/private/p1.png": "robots_disallowed", "/works/secret-1": "robots_disallowed", "/works/w0001": "fetched"}
    assert _fetch(config, probe) == expected
    blocked = _fetch(fast_config(user_agent="blocked-bot/1.0"), probe)
    assert set(blocked.values()) == {"robots_disallowed"}
    paths = site.state.paths()
    assert paths.count("/robots.txt") == 2 and "/works/w0001" in paths  # once per fetcher
    assert not [p for p in paths if p.startswith(("/private/", "/works/secret"))]
    assert {ua for _, _, ua in site.state.log} == {config.user_agent, "blocked-bot/1.0"}


def test_redirect_loops_and_long_chains_are_stopped(site):
    async def loop(fetcher: Fetcher):
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(site.url("/loop/a.png"), "image")
        return caught.value

    error = _fetch(fast_config(), loop)
    assert error.reason == "redirect_loop" and error.permanent
    assert site.state.counts()["/loop/a.png"] == 1 and site.state.counts()["/loop/b.png"] == 1

    error = _fetch(fast_config(max_redirects=0), lambda f: _reason(f, site.url("/img/redirected.png"), "image"))
    assert error == "too_many_redirects"
    ok = _fetch(fast_config(), lambda f: f.fetch(site.url("/img/redirected.png"), "image"))
    assert ok.final_url == site.url("/media/redirected.png") and ok.redirects == (site.url("/media/redirected.png"),)


async def _reason(fetcher: Fetcher, url: str, expect: str) -> str:
    try:
        await fetcher.fetch(url, expect)
    except FetchError as exc:
        return exc.reason
    return "fetched"


@pytest.mark.parametrize("path", ["/media/huge.png", "/media/huge-decl.png"])
def test_oversized_responses_are_dropped_with_a_reason(site, path):
    limit = 256 * 1024

    async def go(fetcher: Fetcher):
        return await _reason(fetcher, site.url(path), "image"), fetcher.stats.bytes

    reason, read = _fetch(fast_config(max_image_bytes=limit), go)
    assert reason == "too_large"
    assert read <= limit + 128 * 1024  # dropped mid-stream: at most the limit plus a chunk, never the 64 MiB


def test_non_image_content_and_non_html_pages_are_rejected(site):
    async def go(fetcher: Fetcher):
        return [
            await _reason(fetcher, site.url("/media/fake.png"), "image"),
            await _reason(fetcher, site.url("/media/w0001.png"), "page"),
            await _reason(fetcher, site.url("/works/nothing-here"), "page"),
        ]

    assert _fetch(fast_config(), go) == ["not_image_content_type", "not_html", "http_404"]


def test_429_retry_after_is_honoured_and_5xx_retried(site):
    site.state.retry_after = "1"
    async def go(fetcher: Fetcher):
        started = time.monotonic()
        fetched = await fetcher.fetch(site.url("/media/ratelimited.png"), "image")
        waited = time.monotonic() - started
        flaky = await fetcher.fetch(site.url("/media/flaky.png"), "image")
        return fetched, waited, flaky, fetcher.stats.retries

    fetched, waited, flaky, retries = _fetch(fast_config(max_attempts=3), go)
    assert fetched.status == 200 and flaky.status == 200 and retries == 2
    assert waited >= 1.0  # Retry-After: 1, although the backoff alone would be 10 ms
    log = [(t, p) for t, p, _ in site.state.log if p == "/media/ratelimited.png"]
    assert len(log) == 2 and log[1][0] - log[0][0] >= 0.99


def test_retries_end_with_a_transient_reason(site):
    site.state.retry_after = "600"

    async def go(fetcher: Fetcher):
        return [
            await _reason(fetcher, site.url("/works/slow"), "page"),
            await _reason(fetcher, site.url("/media/ratelimited.png"), "image"),
        ]

    assert _fetch(fast_config(retry_after_max_s=5), go) == ["timeout", "retry_after_too_long"]
    assert site.state.counts()["/works/slow"] == 2  # max_attempts


def test_parse_retry_after_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), now=1_000_000) == 0.0


def test_http_and_https_of_one_host_share_one_rate_budget():
    from aesthetic_platform.ingest.fetch import host_of

    assert host_of("http://Example.com/a") == host_of("https://example.com:443/b") == host_of("http://example.com:80/") == "example.com"
    assert host_of("http://example.com:8080/") == "example.com:8080" and host_of("http://127.0.0.1:5000/x") == "127.0.0.1:5000"

    async def limiters(fetcher: Fetcher):
        return fetcher.limiter("http://example.com/page"), fetcher.limiter("https://EXAMPLE.com/image.png")

    plain, secure = _fetch(fast_config(), limiters)
    assert plain is secure


def test_crawl_delay_slows_a_host_down(site):
    site.state.crawl_delay = 0.25

    async def go(fetcher: Fetcher):
        for work in ("w0001", "w0002", "w0003"):
            await fetcher.fetch(site.url(f"/works/{work}"), "page")

    _fetch(fast_config(requests_per_second_per_host=100.0), go)
    times = site.state.times()[1:]  # after robots.txt
    assert len(times) == 3 and min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.25 - JITTER


@pytest.mark.parametrize(("status", "expected"), [(404, "fetched"), (503, "robots_unavailable")])
def test_missing_robots_allows_and_unreachable_robots_forbids(site, status, expected):
    site.state.robots_status = status
    assert _fetch(fast_config(), lambda f: _reason(f, site.url("/works/w0001"), "page")) == expected
    if status == 503:
        assert set(site.state.paths()) == {"/robots.txt"}  # nothing else was asked of the host


class _ForwardProxy(socketserver.ThreadingTCPServer):
    """A minimal HTTP forward proxy on 127.0.0.1 that records the absolute URLs it is asked for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, url, version = lines[0].split(" ")
        self.server.seen.append(url)
        target = urlsplit(url)
        headers = [h for h in lines[1:] if not h.lower().startswith(("connection:", "proxy-"))]
        path = target.path + (f"?{target.query}" if target.query else "")
        request = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""]).encode("latin-1")
        with socket.create_connection((target.hostname, target.port or 80)) as upstream:
            upstream.sendall(request)
            while data := upstream.recv(65536):
                self.request.sendall(data)


def test_requests_go_through_the_configured_proxy(site):
    proxy = _ForwardProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        config = fast_config(proxy=f"http://127.0.0.1:{proxy.server_address[1]}")
        fetched = _fetch(config, lambda f: f.fetch(site.url("/media/w0001.png"), "image"))
        assert fetched.status == 200 and fetched.body[:4] == b"\x89PNG"
        assert proxy.seen == [site.url("/robots.txt"), site.url("/media/w0001.png")]
    finally:
        proxy.shutdown()
        proxy.server_close()
