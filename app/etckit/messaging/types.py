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
    # sharing and folders (s12-share; docs/workbooks.md)
    "workbook.share",
    "workbook.unshare",
    "workbook.shares",
    "folder.create",
    "folder.rename",
    "folder.delete",
    "folder.move",
})

# The request types that never change stored data (a read share may send those about its
# workbook; worker/rights.py gives every other type its right).
READ_TYPES = frozenset({
    "echo",
    "test.sleep",
    "test.broadcast",
    "workbook.list",
    "workbook.open",
    "workbook.export",
    "workbook.shares",
    *(f"{kind}.history" for kind in ("source", "scene", "calculation")),
    "calculation.download",
    "plot.render",
    "spectrum.list",
})

ID_MAX = 64

# The plots a calculation has (engine.plots.KINDS; a test checks that they agree): wssvc
# refuses other kinds in plot URLs without importing the engine.
PLOT_KINDS = ("snr_vs_time", "spectrum", "snr_map", "saturation_map")
