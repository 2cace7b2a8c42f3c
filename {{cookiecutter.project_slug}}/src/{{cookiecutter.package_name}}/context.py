"""What every stage receives and returns: the run context, built once per run by the runner,
and the stage's output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import ProjectConfig
from .contract import Contract


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RunContext:
    """One run's settings, resolved once: the project configuration, the contracts, the model's
    registered name and the experiment, plus the run id and a progress logger."""

    root: Path
    run_id: str
    project: ProjectConfig
    contracts: dict[str, Contract]
    # Registered model name as the registry knows it (``catalog.schema.name`` in Unity Catalog).
    model_name: str
    experiment: str
    # The target may approve its own validated versions (local only).
    auto_approve: bool = False
    log: Callable[[str], None] = stderr
    # Unreadable landing files (landing keys) bronze should try again although they have not changed.
    retry_files: tuple[str, ...] = ()
    # Decisions shared between the stages of one run (e.g. the check stage's ``retrain``).
    state: dict[str, object] = field(default_factory=dict)

    @property
    def contract(self) -> Contract:
        """The contract of the source that feeds training, scoring and monitoring."""
        return self.contracts[self.project.source]

    def retraining_declined(self) -> StageOutput | None:
        """The output of train/validate/promote when the check stage decided not to retrain."""
        if self.state.get("retrain") is False:
            return StageOutput(details={"skipped": "the check stage found no reason to retrain in this run"})
        return None


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
