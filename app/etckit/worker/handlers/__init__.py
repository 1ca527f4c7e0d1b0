"""The worker's message handlers, registered by type when imported: diagnostics, the Workbook
List, the contents of a workbook, uploaded spectra, and results (downloads, plots)."""

from . import contents, diagnostics, results, spectra, workbooks  # noqa: F401
