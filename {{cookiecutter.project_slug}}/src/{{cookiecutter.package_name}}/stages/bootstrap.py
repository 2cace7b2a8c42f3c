"""The bootstrap stage: the schema and the landing volume are usable, with the volume's folders."""

from __future__ import annotations

from pathlib import Path

from ..context import RunContext, StageOutput
from ..names import LANDING_VOLUME
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"bootstrap": 10}

VOLUME_FOLDERS = ("raw", "checkpoints", "schemas")


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    """On Databricks the bundle creates the schema and volume; this stage fails fast if the job's
    identity cannot see them.  Locally it creates the same layout under the local directory."""
    rt.ensure_schema()
    for folder in VOLUME_FOLDERS:
        Path(rt.volume_path(LANDING_VOLUME, folder)).mkdir(parents=True, exist_ok=True)
    return StageOutput()
