"""Where model versions registered before the package was layered find their model class: their
pickles name ``<package>.segments.SegmentedModel``.  Delete this module once no registered version (the
champion and anything a rollback may return to) predates the layered package."""

from .ml.flavor import SegmentedModel

__all__ = ["SegmentedModel"]
