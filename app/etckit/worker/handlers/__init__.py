"""The worker's message handlers, registered by type when imported: diagnostics, the Workbook
List, sharing and folders, the contents of a workbook, uploaded spectra, results (downloads,
plots), export/import, and batch expand/compare."""

from . import (  # noqa: F401
    batch,
    contents,
    diagnostics,
    results,
    sharing,
    spectra,
    transfer,
    workbooks,
)
