import struct
import zlib

import pytest

from etckit.engine import calculate, defaults
from etckit.engine.plots import KINDS, render


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, ctype = struct.unpack(">I4s", data[8:16])
    assert ctype == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:16 + length]) == struct.unpack(">I", data[16 + length:20 + length])[0]
    assert data[-8:-4] == b"IEND"
    return w, h


@pytest.fixture(scope="module")
def inputs():
    d = defaults()
    return d["calculation"], d["scene"], {"1": d["source"]}


@pytest.mark.parametrize("kind", KINDS)
def test_plot_is_valid_png(kind, inputs):
    c, s, src = inputs
    result = calculate(c, s, src)
    w, h = _png_size(render(kind, c, s, src, result=result))
    assert (w, h) == (384, 272)


def test_plot_without_result_and_saturated(inputs):
    c, s, src = inputs
    src = {"1": dict(src["1"], normalization={"value": 10, "unit": "abmag",
                                              "wavelength_um": 2})}
    for kind in KINDS:
        _png_size(render(kind, c, s, src))


def test_unknown_kind(inputs):
    with pytest.raises(ValueError):
        render("pie", *inputs)
