"""Where model versions registered before the package was layered find their single-model class:
their pickles name a class of ``<package>.model``.  Delete this module once no registered version
(the champion, or one a rollback may return to) predates the layered package."""

from __future__ import annotations

from .ml.flavor import EstimatorModel


def __getattr__(name: str) -> type[EstimatorModel]:
    """The old single-model class, whatever its library-specific name, is ``EstimatorModel`` now."""
    if name.endswith("Model"):
        return EstimatorModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
