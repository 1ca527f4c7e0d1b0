"""etckit.engine: JWST-like imaging exposure-time calculations, free of web or messaging code.

Public API (see docs/engine.md):

- ``validate_source(d)``, ``validate_scene(d)``, ``validate_calculation(d)`` -> typed objects,
  or ``ValidationError`` with ``.field`` (dotted path) and ``.message``
- ``calculate(calculation, scene, sources_by_id) -> Result`` with ``to_dict/to_json/to_csv``
- ``limiting_flux(calculation, snr=10, ...)`` -> point-source flux density reaching that S/N
- ``defaults()``, ``catalog()`` for the forms
- ``etckit.engine.plots.render(kind, calculation, scene, sources_by_id, result=None) -> bytes``
"""

from .calculator import Result, calculate
from .sensitivity import limiting_flux
from .validation import (
    ValidationError,
    catalog,
    defaults,
    validate_calculation,
    validate_scene,
    validate_source,
)

__all__ = [
    "Result",
    "ValidationError",
    "calculate",
    "catalog",
    "defaults",
    "limiting_flux",
    "validate_calculation",
    "validate_scene",
    "validate_source",
]
