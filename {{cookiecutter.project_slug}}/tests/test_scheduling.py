"""The units xdist schedules (``-n 2``): a module fixture, and the session's sample lake, are built
on one worker only, and the JVM lane starts one JVM.  Checked on the collection of this run, whatever
part of the suite it selected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import conftest
import pytest


@pytest.fixture(scope="module")
def shared() -> dict[str, int]:
    return {}


def test_the_tests_of_a_module_fixture_are_one_unit(request, shared):
    groups = conftest.scheduling_groups(request.session.items)
    users = [item.nodeid for item in request.session.items if "shared" in item.fixturenames]
    assert request.node.nodeid in users and {groups.get(nodeid) for nodeid in users} == {"test_scheduling"}


def test_its_second_user_is_in_the_same_unit(request, shared):
    assert conftest.scheduling_groups(request.session.items)[request.node.nodeid] == "test_scheduling"


def test_a_test_without_one_is_a_unit_of_its_own_and_the_jvm_lane_is_one(request):
    groups = conftest.scheduling_groups(request.session.items)
    assert request.node.nodeid not in groups
    jvm = [item.nodeid for item in request.session.items if item.get_closest_marker("jvm")]
    assert all(groups[nodeid] == "jvm" for nodeid in jvm)


def test_the_scheduler_reads_the_groups_the_workers_wrote(tmp_path, monkeypatch):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"tests/test_a.py::one": "test_a", "tests/test_a.py::two": "test_a"}))
    monkeypatch.setenv(conftest.GROUPS, str(path))
    scheduler = conftest.GroupScheduling.__new__(conftest.GroupScheduling)
    scopes = [scheduler._split_scope(n) for n in ("tests/test_a.py::one", "tests/test_a.py::two", "tests/test_b.py::x")]
    assert scopes == ["test_a", "test_a", "tests/test_b.py::x"]


def test_every_user_of_the_sample_lake_is_in_one_unit_with_its_module_fixtures(request):
    items = request.session.items
    groups = conftest.scheduling_groups(items)
    users = [item for item in items if "sample_medallion" in item.fixturenames]
    assert {groups.get(item.nodeid) for item in users} <= {"medallion", "jvm"}
    # A module fixture's other users stay with it: a module is never split between two units.
    modules = {item.module for item in users if groups.get(item.nodeid) == "medallion"}
    fixture_users = conftest._module_fixture_users(items)
    split = {item.nodeid: groups.get(item.nodeid) for item in items if item.module in modules
             and item in fixture_users and groups.get(item.nodeid) != "medallion"}
    assert split == {}


@pytest.mark.parametrize("finished", [True, False])
def test_a_worker_ends_at_once_only_after_its_tests_and_after_every_other_exit_handler(finished):
    code = ("import atexit, sys, conftest\n"
            "atexit.register(lambda: print('later handler ran', flush=True))\n"
            f"if {finished}: conftest.WORKER_FINISHED.append(True)\n"
            "sys.exit(3)\n")
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw9"}
    ended = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=env,
                           capture_output=True, text=True, timeout=120)
    assert "later handler ran" in ended.stdout, ended.stderr
    # A worker that finished ends at once; one that did not keeps its own exit status.
    assert ended.returncode == (0 if finished else 3), ended.stderr
