"""etckit.engine: JWST-like imaging and slit-spectroscopy exposure-time calculations, free of
web or messaging code (spectroscopy: ``engine/spectroscopy.py``, NIRSpec fixed slit, MIRI LRS).

Public API (see docs/engine.md):

- ``validate_source(d)``, ``validate_scene(d)``, ``validate_calculation(d)`` -> typed objects,
  or ``ValidationError`` with ``.field`` (dotted path) and ``.message``
- ``normalize_source(d)``, ``normalize_scene(d)``, ``normalize_calculation(d)`` -> the dict to
  store (validated, known fields only, JSON-ready), or ``ValidationError``
- ``calculate(calculation, scene, sources_by_id, limits=None) -> Result`` with
  ``to_dict/to_json/to_csv``; ``check_cost(...)`` and ``calculate(..., limits=CostLimits())``
  raise ``TooExpensive`` (``.field``, ``.message``) over a cost limit
- ``limiting_flux(calculation, snr=10, ...)`` -> point-source flux density reaching that S/N
- ``defaults()``, ``catalog()`` for the forms
- ``etckit.engine.plots.render(kind, calculation, scene, sources_by_id, result=None,
  limits=None) -> bytes``
"""

from .calculator import Result, calculate, check_cost
from .cost import CostLimits, TooExpensive
from .sensitivity import limiting_flux
from .validation import (
    ValidationError,
    catalog,
    defaults,
    normalize_calculation,
    normalize_scene,
    normalize_source,
    validate_calculation,
    validate_scene,
    validate_source,
)

__all__ = [
    "CostLimits",
    "Result",
    "TooExpensive",
    "ValidationError",
    "calculate",
    "catalog",
    "check_cost",
    "defaults",
    "limiting_flux",
    "normalize_calculation",
    "normalize_scene",
    "normalize_source",
    "validate_calculation",
    "validate_scene",
    "validate_source",
]
