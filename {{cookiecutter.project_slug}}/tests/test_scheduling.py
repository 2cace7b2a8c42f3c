"""The units xdist schedules (``-n 2``): a module fixture is built on one worker only, and the JVM
lane starts one JVM.  Checked on the collection of this run, whatever part of the suite it selected."""

from __future__ import annotations

import json

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
