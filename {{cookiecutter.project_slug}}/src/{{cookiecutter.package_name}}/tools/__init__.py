"""Tools that are not part of a pipeline run: the offline bundle check, sample data, contract drafts, benchmarks."""
