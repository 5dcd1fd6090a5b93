"""The shared image loader keeps no full-resolution copy: peak memory of one decode is about one canvas."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIDE = 6000

PROBE = f"SIDE = {SIDE}\n" + textwrap.dedent(
    """
    import gc, io, sys
    from pathlib import Path
    from PIL import Image
    from aesthetic_platform.images import load_image

    def peak_mb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    mode = sys.argv[1]
    load_image(Image.new(mode, (64, 64)), fit_pixels=16)  # plugins and code paths warmed up before measuring
    buffer = io.BytesIO()
    source = Image.new(mode, (SIDE, SIDE))
    source.save(buffer, "PNG")
    del source
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = peak_mb()
    image = load_image(buffer.getvalue(), fit_pixels=128 * 128)
    print(peak_mb() - before, image.size[0])
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.parametrize(("mode", "bytes_per_pixel"), [("RGBA", 4), ("P", 1), ("I;16", 2)])
def test_a_reduced_decode_costs_about_one_canvas(mode, bytes_per_pixel):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True).stdout
    rise_mb, width = out.split()
    canvas_mb = SIDE * SIDE * bytes_per_pixel / 2**20
    assert int(width) < SIDE / 4
    # the decoded canvas itself plus one band at a time; a whole-canvas conversion or copy would double it or more
    assert float(rise_mb) < 1.5 * canvas_mb, (mode, rise_mb, canvas_mb)


@pytest.mark.parametrize("size", [(2000, 1000), (2001, 1003), (1003, 2001)])
def test_a_jpeg_with_odd_sides_is_still_decoded_at_reduced_scale(tmp_path, size):
    from PIL import Image

    from aesthetic_platform.images import _draft_jpeg, reduce_factor

    path = tmp_path / "odd.jpg"
    Image.new("RGB", size, (120, 30, 200)).save(path, quality=80)
    fit_pixels = (size[0] * size[1]) // 64  # leaves a factor of 4 with the margin of 2 on each side
    assert reduce_factor(*size, fit_pixels) == 4
    with Image.open(path) as image:
        _draft_jpeg(image, fit_pixels)
        assert image.size == (-(-size[0] // 4), -(-size[1] // 4))  # the decoder's 1/4 scale, not full resolution
