"""Shared fixtures of the template harness: the option matrix, rendered once per session."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from matrix import COMBINATIONS, combo_id  # noqa: E402
from render import render  # noqa: E402


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every combination of the matrix, rendered once: combo id -> project directory."""
    projects = {}
    for context in COMBINATIONS:
        out = tmp_path_factory.mktemp(combo_id(context))
        projects[combo_id(context)] = render(context, out)
    return projects
