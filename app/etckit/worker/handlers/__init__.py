"""The worker's message handlers, registered by type when imported: diagnostics, the Workbook
List, the contents of a workbook, uploaded spectra, results (downloads, plots), and
export/import."""

from . import contents, diagnostics, results, spectra, transfer, workbooks  # noqa: F401
