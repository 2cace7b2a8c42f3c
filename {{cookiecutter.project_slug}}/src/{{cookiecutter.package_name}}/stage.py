"""What every stage receives and returns."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RunContext:
    """The project directory (configuration, contracts), the run id and a progress logger."""

    root: Path
    run_id: str
    log: Callable[[str], None] = stderr
    experiment: str | None = None
    model_name: str | None = None
    # Decisions shared between the stages of one run (e.g. the check stage's ``retrain``).
    state: dict[str, object] = field(default_factory=dict)


@dataclass
class StageOutput:
    """Short names of the tables a stage wrote, and details for the run summary."""

    tables: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


class StageFailure(RuntimeError):
    """A stage stopped on purpose (a fail-closed gate); ``details`` go into the summary."""

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}
