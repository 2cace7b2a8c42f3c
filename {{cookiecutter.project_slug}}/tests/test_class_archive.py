"""The JVM's class archive: mapped when cached, recorded otherwise, never in the way."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from {{ cookiecutter.package_name }}.runtime import ClassArchive

# Whether an archive is mapped is read from a process's mappings, where Linux shows them.
needs_proc_maps = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="no /proc/PID/maps here")


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


def test_each_pyspark_installation_has_an_archive_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """The JVM maps an archive only on the class path it was recorded with (pyspark's jars): two
    environments sharing the cache must not take turns failing to map each other's archive."""
    here = ClassArchive.in_cache(delta=False).path
    monkeypatch.setattr(pyspark, "__file__", str(tmp_path / "other-env" / "pyspark" / "__init__.py"))
    elsewhere = ClassArchive.in_cache(delta=False).path
    assert elsewhere != here and elsewhere.parent == here.parent


@needs_proc_maps
def test_a_cached_archive_that_was_not_mapped_is_removed_and_a_mapped_one_kept(tmp_path: Path) -> None:
    archive = ClassArchive(tmp_path / "spark-classes-x.jsa")
    archive.path.write_bytes(b"\0" * mmap.PAGESIZE)
    with archive.path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ):
        assert archive.forget_if_unmapped(os.getpid()) is False  # this process maps it now
    assert archive.path.exists()
    assert archive.forget_if_unmapped(os.getpid()) is True  # nothing maps it: stale, recorded anew next time
    assert not archive.path.exists()
    assert ClassArchive(archive.path).java_option().startswith("-XX:ArchiveClassesAtExit=")


@needs_proc_maps
@pytest.mark.jvm
def test_the_lane_jvm_maps_the_cached_archive_or_records_one(jvm_spark, jvm_class_archive) -> None:
    pid = jvm_spark.sparkContext._gateway.proc.pid
    if jvm_class_archive.recording is not None:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert f"-XX:ArchiveClassesAtExit={jvm_class_archive.recording}" in command
    else:  # a cached archive stays only while JVMs map it
        mapped = str(jvm_class_archive.path) in Path(f"/proc/{pid}/maps").read_text()
        assert mapped or not jvm_class_archive.path.exists()
