"""A crawl killed halfway (a real process, SIGKILL) resumes without fetching anything it had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from aesthetic_platform.ingest import CrawlSource, Frontier, register_source
from aesthetic_platform.ingest.crawl import crawl
from aesthetic_platform.schemas import REFERENCE_IMAGES
from tests.fixtures.crawl_site import SiteState, running_site
from tests.ingest.conftest import REPO_ROOT, fast_config


def test_killed_crawl_resumes_without_refetching(data_root, tmp_path):
    with running_site(SiteState(works=40, per_page=10, specials=False)) as site:
        register_source(data_root, CrawlSource(name="gallery", kind="gallery", start_urls=[site.start_url]))
        settings = tmp_path / "crawl.json"
        settings.write_text(json.dumps(fast_config(requests_per_second_per_host=30.0).model_dump()))
        env = {**os.environ, "AESTHETIC_HOME": str(data_root.root), "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, "-m", "aesthetic_platform.ingest", "run", "gallery", "--config", str(settings), "--json"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while sum(p.startswith("/media/") for p in site.state.paths()) < 15:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the crawl never got going"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL

        with Frontier(data_root.crawl_frontier("gallery")) as frontier:
            finished = set(frontier.urls_in_state("done"))
            stored_before = len(frontier.image_records())
            in_flight = frontier.urls_in_state("in_progress")
        assert stored_before >= 10 and 0 < len(finished) < 1 + 4 + 40 + 40
        before = len(site.state.log)

        report = crawl(data_root, CrawlSource(name="gallery", kind="gallery", start_urls=[site.start_url]), fast_config())
        after = [site.url(p) for p in site.state.paths()[before:]]
        assert report.resumed and report.requeued == len(in_flight)
        assert not finished & set(after), "a finished URL was fetched again"
        assert len(after) == len(set(after)) and "/robots.txt" in site.state.paths()[before:]
        counts = site.state.counts()
        assert sum(counts[f"/media/w{i:04d}.png"] for i in range(1, 41)) <= 40 + len(in_flight)
        assert report.images_stored == 40 - stored_before and report.total_images == 40
        frame = REFERENCE_IMAGES.read(data_root.table("reference_images", "gallery"))
        assert frame.height == 40 == frame["sha256"].n_unique()
        assert len(list((data_root.root / "reference_images" / "gallery").rglob("*.png"))) == 40
