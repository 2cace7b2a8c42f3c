"""The JVM's class archive: mapped when cached, recorded otherwise, never in the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.runtime import ClassArchive


def test_a_cached_archive_is_mapped_and_a_missing_one_recorded_under_a_name_of_its_own(tmp_path: Path) -> None:
    archive = ClassArchive(tmp_path / "cache" / "spark-classes-x.jsa")
    option = archive.java_option()
    assert archive.recording is not None and option == f"-XX:ArchiveClassesAtExit={archive.recording}"
    assert archive.recording.parent == archive.path.parent and archive.recording != archive.path
    archive.recording.write_bytes(b"recorded")  # what the JVM writes as it exits
    archive.publish()
    assert archive.path.read_bytes() == b"recorded" and not archive.recording.exists()
    assert ClassArchive(archive.path).java_option() == f"-XX:SharedArchiveFile={archive.path}"


def test_a_recording_left_by_a_killed_jvm_is_removed_and_one_under_way_kept(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    path = tmp_path / "spark-classes-x.jsa"
    stale = tmp_path / f".{path.name}.{ended.stdout.strip()}"
    stale.write_bytes(b"half")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as running:
        under_way = tmp_path / f".{path.name}.{running.pid}"
        under_way.write_bytes(b"half")
        ClassArchive(path).java_option()
        running.kill()
    assert not stale.exists() and under_way.exists()


def test_an_unwritable_cache_gives_no_option_instead_of_failing(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    archive = ClassArchive(blocked / "spark-classes-x.jsa")
    assert archive.java_option() == "" and archive.recording is None
    archive.publish()  # nothing recorded, nothing to do
