"""``python -m aesthetic_platform.ingest run SOURCE``: the crawl CLI without the rest of the command line."""

from aesthetic_platform.ingest.cli import app

app()
