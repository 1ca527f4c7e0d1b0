"""Names users type end up in plot legends (a compared calculation's name, a source's name in
the spectrum plot). matplotlib reads ``$...$`` in a label as mathtext: a malformed formula
(``ok $$``, ``$x^^$``) failed the whole render, so the sandbox's ValueError reached the
worker's handler as an ``internal`` error; and a label starting with ``_`` was silently left
out of the legend. Each name is drawn literally now (plots.user_label)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etckit.engine import calculate, defaults, plots
from etckit.engine.plots import render, render_compare

HOSTILE = ["ok $$", "$x^^$", r"$\frac{1}{$", "a $ b $ c", "_hidden", "$", "\\$x$"]


@pytest.fixture(scope="module")
def imaging():
    d = defaults()
    calc, scene, sources = d["calculation"], d["scene"], {"1": d["source"]}
    return calc, calculate(calc, scene, sources)


def _legend_of(monkeypatch, draw) -> list[str]:
    """The legend texts of the figure ``draw()`` renders (captured as it is encoded)."""
    seen: list[list[str]] = []
    encode = plots._png

    def capture(fig):
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        seen.append([t.get_text() for leg in legends for t in leg.get_texts()])
        return encode(fig)

    monkeypatch.setattr(plots, "_png", capture)
    assert draw().startswith(b"\x89PNG")
    return seen[-1]


def test_compare_draws_any_calculation_name_literally(imaging, monkeypatch):
    calc, result = imaging
    entries = [(name, calc, result) for name in HOSTILE]
    texts = _legend_of(monkeypatch, lambda: render_compare(None, "snr_vs_time", entries))
    assert [t.strip().replace("\\$", "$") for t in texts] == HOSTILE


def test_the_spectrum_plot_draws_any_source_name(monkeypatch):
    d = defaults()
    calc, scene = d["calculation"], {"sources": [{"source_id": "a"}, {"source_id": "_b"}]}
    sources = {"a": {**d["source"], "name": "$x^^$"}, "_b": {**d["source"], "name": ""}}
    texts = _legend_of(monkeypatch, lambda: render("spectrum", calc, scene, sources))
    assert [t.strip().replace("\\$", "$") for t in texts] == ["$x^^$", "_b"]


NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200)


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=3))
def test_any_names_compare_to_a_png(imaging, names):
    calc, result = imaging
    png = render_compare(None, "snr_vs_time", [(n, calc, result) for n in names])
    assert png.startswith(b"\x89PNG")
