"""The browser message types wssvc accepts (docs/protocol.md).

LOCAL types are answered by wssvc itself; REQUEST_TYPES go to a worker, which has a handler
for each (a test checks that the two lists agree).
"""

LOCAL_TYPES = frozenset({"ping", "pong"})

REQUEST_TYPES = frozenset({
    "echo",
    "test.sleep",
    "test.broadcast",
    "workbook.list",
    "workbook.create",
    "workbook.rename",
    "workbook.delete",
    "workbook.copy",
    "workbook.open",
    "workbook.recalculate",
    "workbook.export",
    "workbook.import",
    *(f"{kind}.{verb}" for kind in ("source", "scene", "calculation")
      for verb in ("add", "edit", "copy", "delete", "history")),
    "calculation.download",
    "plot.render",
    "spectrum.upload",
    "spectrum.list",
    "spectrum.delete",
    # s12-astro (issue 16): batch expand and compare
    "calculation.expand",
    "plot.compare",
})

ID_MAX = 64

# The plots a calculation has (engine.plots.KINDS; a test checks that they agree): wssvc
# refuses other kinds in plot URLs without importing the engine.
PLOT_KINDS = ("snr_vs_time", "spectrum", "snr_map", "saturation_map", "background")
