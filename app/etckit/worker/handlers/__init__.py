"""The worker's message handlers, registered by type when imported: diagnostics, the Workbook
List, sharing and folders, the contents of a workbook, uploaded spectra, results (downloads,
plots), and export/import."""

from . import (  # noqa: F401
    contents,
    diagnostics,
    results,
    sharing,
    spectra,
    transfer,
    workbooks,
)
