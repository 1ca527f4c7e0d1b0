"""The worker's message handlers, registered by type when imported: diagnostics, the Workbook
List, the contents of a workbook, and results (downloads, plots)."""

from . import contents, diagnostics, results, workbooks  # noqa: F401
