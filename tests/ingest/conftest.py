"""Crawler tests: the fixture gallery site on 127.0.0.1 and fast crawl settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aesthetic_platform.ingest import CrawlConfig
from tests.fixtures.crawl_site import RunningSite, SiteState, running_site

REPO_ROOT = Path(__file__).resolve().parents[2]


def fast_config(**overrides) -> CrawlConfig:
    """Short timeouts and backoffs so the hazards of the fixture site cost little time."""
    fields = dict(
        requests_per_second_per_host=200.0, max_concurrency_per_host=4, max_concurrency=8, read_timeout_s=0.3,
        request_deadline_s=5.0, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.05, max_image_bytes=1_000_000,
        min_image_side=32,
    )
    fields.update(overrides)
    return CrawlConfig(**fields)


@pytest.fixture
def site() -> Iterator[RunningSite]:
    with running_site(SiteState(slow_s=1.0, retry_after="0.2")) as running:
        yield running


@pytest.fixture
def plain_site() -> Iterator[RunningSite]:
    """Thirty ordinary works over three list pages, no hazards."""
    with running_site(SiteState(works=30, per_page=10, specials=False)) as running:
        yield running
