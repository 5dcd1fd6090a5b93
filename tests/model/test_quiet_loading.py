"""Loading a saved model says nothing about random initialisation: trained weights follow at once."""

from __future__ import annotations

import logging

from aesthetic_platform.model import AestheticScorer, named_config
from aesthetic_platform.model.towers import RANDOM_INIT_NOTICE


def _notices(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(RANDOM_INIT_NOTICE)]


def test_from_pretrained_does_not_announce_a_random_init(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    AestheticScorer(named_config("tiny")).save_pretrained(tmp_path)
    assert _notices(caplog), "a genuinely random model is still announced"
    caplog.clear()
    AestheticScorer.from_pretrained(tmp_path)
    assert _notices(caplog) == []
    logging.getLogger().warning("other warnings still get through")
    assert "other warnings still get through" in caplog.text
    assert not [f for f in logging.getLogger().filters if type(f).__name__ == "_RandomInitNotice"]
