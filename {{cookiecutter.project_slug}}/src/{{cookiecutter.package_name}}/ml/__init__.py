"""The ML layer: the estimator seam, fitting and tuning, metrics, scoring, the logged model
flavours, segments, registry operations, the drift baseline, tracking, plots and reports."""
