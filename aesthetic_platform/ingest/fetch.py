"""The polite HTTP layer of the crawler: one ``Fetcher`` per crawl.

- **Rate and concurrency per host**: a ``HostLimiter`` per host (``host_of``: http and https
  of one host share it; only an explicit non-default port makes another) holds a
  semaphore (requests in flight) and lets a request start only ``1/rate`` seconds after
  the previous start on that host; a request first takes a semaphore place, then waits
  for its start, so a queue of waiting requests can never start in a burst. Every request counts: robots.txt, each
  redirect hop and each retry.
- **Retries**: ``httpx`` retries only failed connection attempts (``transport retries``) and
  has no policy for HTTP status codes or ``Retry-After``, so retries are ``tenacity``'s:
  429 and 5xx answers, timeouts and lost connections, up to ``max_attempts``; the wait is
  the server's ``Retry-After`` (seconds or an HTTP date) when it gives one, else
  exponential backoff with jitter. A ``Retry-After`` also pauses the whole host, not just
  the one request. One longer than ``retry_after_max_s`` ends the URL's attempts for this run.
- **robots.txt** (RFC 9309, parsed by ``protego``): fetched once per host before anything
  else there; every URL, redirect targets included, is checked against it for the
  configured user agent. 4xx: no rules; 5xx or unreachable: the whole host is treated as
  disallowed for this run. A ``Crawl-delay`` slows the host's rate down, never up.
- **Redirects** are followed by hand (``follow_redirects=False``) so each hop is checked
  against robots.txt and rate-limited, a loop stops at the first repeated URL
  (``redirect_loop``) and a chain stops after ``max_redirects`` hops.
- **Limits**: the content type is checked on the headers, a ``Content-Length`` above the
  limit is refused before the body is read, and the body is streamed and dropped as
  soon as it passes the limit (``too_large``), so a huge or endless response costs at
  most the limit plus one chunk.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from aesthetic_platform.ingest.config import CrawlConfig

Expect = Literal["page", "image", "robots"]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PAGE_TYPES = ("text/html", "application/xhtml+xml")
MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB
#: Response headers kept as provenance of a stored image.
PROVENANCE_HEADERS = (
    "content-type", "content-length", "etag", "last-modified", "cache-control", "date", "server", "link", "x-robots-tag", "x-license",
)


class FetchError(Exception):
    """A URL that could not be fetched. ``permanent`` errors are not retried in later runs."""

    def __init__(self, reason: str, detail: str = "", permanent: bool = True) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.permanent = permanent


class _Retryable(Exception):
    """A 429/5xx answer worth another attempt."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}" + (f", Retry-After {retry_after:.3g} s" if retry_after is not None else ""))
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]
    redirects: tuple[str, ...] = ()

    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


def origin_of(url: str) -> str:
    """``scheme://host:port``: what robots.txt rules belong to (RFC 9309 §2.3)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The server a URL loads: its host, plus its port only when that is not the scheme's default.

    Rate and concurrency limits are per server, so http://example.com and https://example.com
    share one budget instead of getting twice the configured rate."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    return host if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HostLimiter:
    """Requests in flight and request starts per second for one host."""

    def __init__(self, rate: float, concurrency: int) -> None:
        self.interval = 1.0 / rate
        self.semaphore = asyncio.Semaphore(concurrency)
        self._last_start = float("-inf")
        self._paused_until = 0.0

    def slow_down(self, interval: float) -> None:
        self.interval = max(self.interval, interval)

    def pause(self, seconds: float) -> None:
        """Start nothing on this host for ``seconds`` (a Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def _start_slot(self) -> None:
        """Return when this request may start: ``interval`` after the previous *actual* start, outside any pause.

        The spacing is checked against the time a request really starts (not a slot booked in
        advance), so a stalled event loop can delay requests but never release them in a burst.
        """
        while True:
            now = time.monotonic()
            start = max(self._last_start + self.interval, self._paused_until)
            if start <= now:
                self._last_start = now
                return
            await asyncio.sleep(start - now)

    async def __aenter__(self) -> HostLimiter:
        await self.semaphore.acquire()
        try:
            await self._start_slot()
        except BaseException:
            self.semaphore.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.semaphore.release()


@dataclass
class FetchStats:
    requests: int = 0
    bytes: int = 0
    statuses: Counter = field(default_factory=Counter)
    retries: int = 0


class Fetcher:
    """Fetch pages and images under one ``CrawlConfig`` (use as ``async with Fetcher(config) as f``)."""

    def __init__(self, config: CrawlConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.stats = FetchStats()
        self._limiters: dict[str, HostLimiter] = {}
        self._robots: dict[str, Protego | None | FetchError] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        timeout = httpx.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s, write=config.read_timeout_s, pool=None)
        self._client = httpx.AsyncClient(
            headers={"User-Agent": config.user_agent},
            timeout=timeout,
            follow_redirects=False,
            proxy=config.proxy or None,
            transport=transport,
            trust_env=False,
            limits=httpx.Limits(max_connections=max(config.max_concurrency, config.max_concurrency_per_host) * 2),
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    def limiter(self, url: str) -> HostLimiter:
        """The limiter of the server ``url`` loads (``host_of``), made on first use."""
        host = host_of(url)
        if host not in self._limiters:
            self._limiters[host] = HostLimiter(self.config.requests_per_second_per_host, self.config.max_concurrency_per_host)
        return self._limiters[host]

    # --- robots.txt ------------------------------------------------------------------
    async def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets the configured user agent fetch it (loads it once)."""
        rules = await self._robots_for(origin_of(url))
        if isinstance(rules, FetchError):
            raise rules
        return rules is None or rules.can_fetch(url, self.config.user_agent)

    async def _robots_for(self, origin: str) -> Protego | None | FetchError:
        if origin in self._robots:
            return self._robots[origin]
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        return self._robots[origin]

    async def _load_robots(self, origin: str) -> Protego | None | FetchError:
        url = origin + "/robots.txt"
        try:
            fetched = await self._follow(url, "robots", check_robots=False)
        except FetchError as exc:
            if exc.reason.startswith("http_4") and exc.reason != "http_429":
                return None  # RFC 9309 2.3.1.3: "unavailable" -> no rules
            return FetchError("robots_unavailable", f"{url}: {exc}", permanent=False)  # 2.3.1.4: "unreachable" -> disallow all
        rules = Protego.parse(fetched.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"))
        delay = rules.crawl_delay(self.config.user_agent)
        if delay:
            self.limiter(origin).slow_down(float(delay))
        return rules

    # --- fetching --------------------------------------------------------------------
    async def fetch(self, url: str, expect: Literal["page", "image"]) -> Fetched:
        """GET ``url`` (robots.txt obeyed, redirects bounded, limits applied) or raise ``FetchError``."""
        return await self._follow(url, expect, check_robots=True)

    async def _follow(self, url: str, expect: Expect, check_robots: bool) -> Fetched:
        chain = [url]
        current = url
        for _hop in range(self.config.max_redirects + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError("unsupported_scheme", current)
            if check_robots and not await self.allowed(current):
                raise FetchError("robots_disallowed", current)
            answer = await self._get_with_retries(current, expect)
            if isinstance(answer, Fetched):
                return Fetched(url, current, answer.status, answer.content_type, answer.body, answer.headers, tuple(chain[1:]))
            target = urljoin(current, answer.location).split("#", 1)[0]
            if target in chain:
                raise FetchError("redirect_loop", " -> ".join([*chain, target]))
            chain.append(target)
            current = target
        raise FetchError("too_many_redirects", f"more than {self.config.max_redirects} hops: " + " -> ".join(chain))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return wait_exponential_jitter(initial=self.config.backoff_initial_s, max=self.config.backoff_max_s)(state)

    async def _get_with_retries(self, url: str, expect: Expect) -> Fetched | _Redirect:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable | httpx.TransportError | TimeoutError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                    return await self._get_once(url, expect)
        except _Retryable as exc:
            detail = f"{url}: still {exc} after {self.config.max_attempts} attempts"
            raise FetchError(f"http_{exc.status}", detail, permanent=False) from None
        except (httpx.TimeoutException, TimeoutError):
            raise FetchError("timeout", f"{url}: no complete answer after {self.config.max_attempts} attempts", permanent=False) from None
        except httpx.TransportError as exc:
            raise FetchError("connection_error", f"{url}: {type(exc).__name__}: {exc}", permanent=False) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, url: str, expect: Expect) -> Fetched | _Redirect:
        limiter = self.limiter(url)
        async with limiter:
            self.stats.requests += 1
            async with asyncio.timeout(self.config.request_deadline_s):
                async with self._client.stream("GET", url) as response:
                    status = response.status_code
                    self.stats.statuses[status] += 1
                    if status in RETRY_STATUSES:
                        retry_after = parse_retry_after(response.headers.get("retry-after"))
                        if retry_after is not None:
                            if retry_after > self.config.retry_after_max_s:
                                raise FetchError(
                                    "retry_after_too_long", f"{url}: HTTP {status}, Retry-After {retry_after:.0f} s", permanent=False
                                )
                            limiter.pause(retry_after)
                        raise _Retryable(status, retry_after)
                    if status in (301, 302, 303, 307, 308):
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError("bad_redirect", f"{url}: HTTP {status} without Location")
                        return _Redirect(location, status)
                    if status >= 400 or status < 200 or status == 204:
                        raise FetchError(f"http_{status}", url)
                    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    self._check_type(url, expect, content_type)
                    limit = self._limit(expect)
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise FetchError("too_large", f"{url}: Content-Length {declared} > {limit} bytes")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        self.stats.bytes += len(chunk)
                        if size > limit:
                            raise FetchError("too_large", f"{url}: body passed {limit} bytes; dropped mid-stream")
                        chunks.append(chunk)
                    headers = {k: response.headers[k] for k in PROVENANCE_HEADERS if k in response.headers}
                    return Fetched(url, url, status, content_type, b"".join(chunks), headers)

    def _check_type(self, url: str, expect: Expect, content_type: str) -> None:
        if expect == "page" and content_type and content_type not in PAGE_TYPES:
            raise FetchError("not_html", f"{url}: content type {content_type!r}")
        if expect == "image" and content_type not in (*self.config.image_types, "application/octet-stream", ""):
            raise FetchError("not_image_content_type", f"{url}: content type {content_type!r}")

    def _limit(self, expect: Expect) -> int:
        if expect == "image":
            return self.config.max_image_bytes
        if expect == "robots":
            return MAX_ROBOTS_BYTES * 4
        return self.config.max_page_bytes
