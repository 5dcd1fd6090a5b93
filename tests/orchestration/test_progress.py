"""Long steps log a handful of progress lines: each tenth, after a quiet spell, and the end."""

import pytest

from aesthetic_platform.assets.progress import ThrottledProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_thousand_items_log_the_start_each_tenth_and_the_end():
    lines: list[str] = []
    progress = ThrottledProgress(lines.append, unit="judge calls", clock=Clock())
    for done in range(1, 1001):
        progress(done, 1000)
    assert lines == [f"{done}/1000 judge calls" for done in (1, *range(100, 1001, 100))]


def test_a_slow_step_logs_after_a_quiet_spell_and_a_short_one_logs_its_end():
    clock = Clock()
    lines: list[str] = []
    progress = ThrottledProgress(lines.append, clock=clock, quiet_s=30.0)
    progress(1, 1000, "pairs")
    clock.now = 31.0
    progress(2, 1000, "pairs")
    progress(3, 1000, "pairs")
    assert lines == ["1/1000 pairs", "2/1000 pairs"]
    short: list[str] = []
    ThrottledProgress(short.append, unit="images")(3, 3)
    assert short == ["3/3 images"]


def test_nothing_to_do_logs_nothing_and_steps_must_be_positive():
    lines: list[str] = []
    ThrottledProgress(lines.append)(0, 0)
    assert lines == []
    with pytest.raises(ValueError, match="steps must be at least 1"):
        ThrottledProgress(lines.append, steps=0)
