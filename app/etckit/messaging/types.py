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
    # batch expand and compare (issue 16)
    "calculation.expand",
    "plot.compare",
    # sharing and folders (s12-share; docs/workbooks.md)
    "workbook.share",
    "workbook.unshare",
    "workbook.shares",
    "workbook.leave",
    "folder.create",
    "folder.rename",
    "folder.delete",
    "folder.move",
})

# The message types that never change stored data: all an API token of scope "read" may
# send (wssvc answers any other type `forbidden` on such a connection). Shared with the
# sharing rights (a read share); a test checks it is a subset of the types above.
READ_TYPES = frozenset({
    "ping", "pong", "echo", "test.sleep", "test.broadcast",
    "workbook.list", "workbook.open", "workbook.export", "workbook.shares",
    "source.history", "scene.history", "calculation.history",
    "calculation.download", "plot.render", "plot.compare", "spectrum.list",
})

ID_MAX = 64

# The plots a calculation has (engine.plots.KINDS; a test checks that they agree): wssvc
# refuses other kinds in plot URLs without importing the engine.
PLOT_KINDS = ("snr_vs_time", "spectrum", "snr_map", "saturation_map", "background",
              # spectroscopic calculations (issue 16)
              "snr_vs_wavelength", "extracted_flux", "detector_2d", "snr_2d")
