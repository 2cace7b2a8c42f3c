"""The data layer: pure DataFrame transformations (quality, features, drift statistics) and the
Great Expectations suites; ``inputs.py`` reads model inputs through the runtime."""
