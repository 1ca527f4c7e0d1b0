"""Engine throughput: calculations per second (one process), plot render times, and the
(one calculation + its plots) budget against issue 15's target, with same-run baselines. The
issue counted four plots; an imaging calculation has five since the background plot (issue
16), all five are in the budget.

The target is 300 ms on a quiet 2-core machine where an empty matplotlib figure takes 25.7 ms,
i.e. at most 11.7 empty figures. The budget is measured interleaved with the empty figure
(pairs, median of the ratios) in wall-clock and in CPU time, so that a loaded machine moves
both sides alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from etckit.engine import calculate, defaults
from etckit.engine.plots import IMAGING_KINDS, SPECTROSCOPY_KINDS, render

KINDS = IMAGING_KINDS
# issue 16: a spectroscopic calculation + its four plots stays under 1 s
SPECTRO = {
    "NIRSpec PRISM/CLEAR": {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "PRISM",
                            "filter": "CLEAR", "readout_pattern": "NRSIRS2", "groups": 14,
                            "integrations": 1, "exposures": 10},
    "NIRSpec G140M/F100LP": {"instrument": "nirspec", "mode": "fixed_slit",
                             "disperser": "G140M", "filter": "F100LP",
                             "readout_pattern": "NRSIRS2", "groups": 14, "integrations": 1,
                             "exposures": 10, "strategy": {"kind": "time_for_snr",
                                                           "target_snr": 10}},
    "MIRI LRS P750L": {"instrument": "miri", "mode": "lrs_slit", "disperser": "P750L",
                       "filter": None, "readout_pattern": "FASTR1", "groups": 180,
                       "integrations": 1, "exposures": 20},
}


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def empty_figure_png() -> bytes:
    import io
    fig = Figure(figsize=(4.8, 3.4), dpi=80)
    FigureCanvasAgg(fig)
    fig.add_subplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


TARGET_MS, EMPTY_FIGURE_MS = 300.0, 25.7  # issue 15, both on the same quiet machine


def paired_ratio(fn: Callable[[], object], base: Callable[[], object], repeat: int,
                 clock: Callable[[], float]) -> tuple[float, float]:
    """(median time of ``fn``, median of fn/base ratios), the two run alternately."""
    times, ratios = [], []
    for _ in range(repeat):
        t0 = clock()
        base()
        t1 = clock()
        fn()
        t2 = clock()
        times.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(times), statistics.median(ratios)


def main() -> None:
    d = defaults()
    c, s, src = d["calculation"], d["scene"], {"1": d["source"]}
    calculate(c, s, src)  # warm caches (PSF profile, data file)
    for k in KINDS:
        render(k, c, s, src)

    a = np.random.default_rng(0).random((512, 512))
    base_np = statistics.median(timed(lambda: np.fft.rfft2(a), 50))
    base_fig = statistics.median(timed(empty_figure_png, 10))

    t_calc = timed(lambda: calculate(c, s, src), 30)
    med_calc = statistics.median(t_calc)
    print(f"calculations per second (1 process): {1 / med_calc:8.1f}  "
          f"(median {med_calc * 1e3:.1f} ms)")
    result = calculate(c, s, src)
    for k in KINDS:  # each paired with the empty figure, as the budget below
        med, ratio = paired_ratio(lambda k=k: render(k, c, s, src, result=result),
                                  empty_figure_png, 9, time.perf_counter)
        print(f"plot {k:15s} median {med * 1e3:7.1f} ms   x empty figure {ratio:5.2f}")
    miri = dict(c, instrument="miri", mode="imaging", filter="F1500W", readout_pattern="FASTR1",
                groups=40, aperture_radius_arcsec=None, annulus_inner_arcsec=None,
                annulus_outer_arcsec=None, strategy={"kind": "time_for_snr", "target_snr": 10})
    med_miri = statistics.median(timed(lambda: calculate(miri, s, src), 10))
    print(f"MIRI F1500W time_for_snr calculation median {med_miri * 1e3:7.1f} ms")

    def calc_and_plots() -> None:
        r = calculate(c, s, src)
        for k in KINDS:
            render(k, c, s, src, result=r)

    target = TARGET_MS / EMPTY_FIGURE_MS
    for name, clock in (("wall", time.perf_counter), ("CPU", time.process_time)):
        total, ratio = paired_ratio(calc_and_plots, empty_figure_png, 9, clock)
        print(f"one calculation + its {len(KINDS)} plots ({name} time): {total * 1e3:7.1f} ms = "
              f"{ratio:5.2f} x empty figure (target <= {target:.1f}: "
              f"{'met' if ratio <= target else 'NOT met'})")
    spectroscopy(s, src, med_calc, base_fig)
    print(f"baseline numpy rfft2 512x512: {base_np * 1e3:7.2f} ms; calculation = "
          f"{med_calc / base_np:6.1f} x baseline")
    print(f"baseline empty matplotlib figure -> PNG: {base_fig * 1e3:7.1f} ms")


def spectroscopy(s: dict, src: dict, imaging_s: float, empty_s: float) -> None:
    """Spectroscopic calculation times next to the imaging one, and calculation + plots (in
    ms and in empty figures: the 1 s target is 1000 / 25.7 = 39 empty figures)."""
    for name, c in SPECTRO.items():
        calculate(c, s, src)  # warm the pair's pixel grid
        med = statistics.median(timed(lambda c=c: calculate(c, s, src), 10))

        def with_plots(c=c) -> None:
            r = calculate(c, s, src)
            for k in SPECTROSCOPY_KINDS:
                render(k, c, s, src, result=r)

        with_plots()
        total = statistics.median(timed(with_plots, 5))
        limit = 1000 / EMPTY_FIGURE_MS
        verdict = "met" if total / empty_s < limit else "NOT met"
        print(f"spectroscopic {name:21s} calculation {med * 1e3:7.1f} ms "
              f"(imaging {imaging_s * 1e3:.1f} ms, x{med / imaging_s:5.1f}); + four plots "
              f"{total * 1e3:7.1f} ms = {total / empty_s:5.2f} x empty figure (target < 1 s = "
              f"{limit:.0f}: {verdict})")


if __name__ == "__main__":
    main()
