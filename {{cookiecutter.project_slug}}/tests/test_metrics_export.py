"""Sail lane: every run's figures in the Prometheus text format, as a textfile and pushed to a
Pushgateway (a local ``http.server`` stands in for it).  The figures of a full pipeline run are
checked in tests/test_inference.py, on the run its lake already made."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import ConfigError, load_project
from {{ cookiecutter.package_name }}.context import StageOutput
from {{ cookiecutter.package_name }}.names import PACKAGE

pytestmark = pytest.mark.sail


def families(text: str) -> dict[str, list]:
    """Samples by family name, as a Prometheus server would read them."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def with_metrics(root: Path, **settings: object) -> Path:
    path = root / "conf" / "project.yml"
    project = yaml.safe_load(path.read_text())
    project["metrics"] = settings
    path.write_text(yaml.safe_dump(project))
    return root


class Recorder(BaseHTTPRequestHandler):
    """A Pushgateway that records each request: method, path and body."""

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.received
    server.shutdown()
    server.server_close()


def test_the_run_writes_a_textfile_and_pushes_the_same_figures(local_runtime, make_root, tmp_path, pushgateway):
    url, received = pushgateway
    rt, root = local_runtime, with_metrics(make_root(tmp_path / "project"), pushgateway_url=url)
    summary = pipeline.run_stages(rt, ["bootstrap"], run_id="m1", log=lambda _: None, root=root)
    assert summary.ok and summary.metrics_error is None
    path = Path(summary.metrics_file)
    assert path == Path(rt.metrics_dir()) / f"{PACKAGE}_{rt.target}_bootstrap.prom"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "written whole: no temporary file is left"
    written = families(path.read_text())
    (info,) = written["mlops_run_info"]
    assert info.labels == {**info.labels, "run_id": "m1", "project": PACKAGE, "target": rt.target,
                           "selection": "bootstrap"}
    assert written["mlops_run_success"][0].value == 1.0
    (duration,) = written["mlops_stage_duration_seconds"]
    assert duration.labels["stage"] == "bootstrap" and 0 <= duration.value == pytest.approx(
        summary.stages[0].seconds)
    status = {s.labels["mlops_stage_status"]: s.value for s in written["mlops_stage_status"]}
    assert status == {"succeeded": 1.0, "skipped": 0.0, "failed": 0.0}

    (request,) = received
    method, request_path, body = request
    assert method == "PUT" and request_path.startswith(f"/metrics/job/{PACKAGE}/")
    grouping = request_path.removeprefix(f"/metrics/job/{PACKAGE}/").split("/")
    assert dict(zip(grouping[::2], grouping[1::2], strict=True)) == {"target": rt.target, "selection": "bootstrap"}
    assert families(body).keys() == written.keys()
    assert summary.metrics_push.startswith(f"pushed to {url}")
    assert "metrics push: pushed to" in summary.to_text() and '"metrics_file"' in summary.to_json()


def test_a_failed_push_is_reported_and_never_fails_the_run(local_runtime, make_root, tmp_path, monkeypatch):
    rt = local_runtime
    root = with_metrics(make_root(tmp_path / "project"), pushgateway_url="http://127.0.0.1:9",
                        pushgateway_secret={"scope": "observability", "key": "pushgateway_url"})
    monkeypatch.setitem(pipeline.STAGES, "broken", lambda _rt, _ctx: 1 / 0)
    monkeypatch.setitem(pipeline.STAGES, "after", lambda _rt, _ctx: StageOutput())
    summary = pipeline.run_stages(rt, ["bootstrap", "broken", "after"], run_id="m2", log=lambda _: None, root=root)
    assert [s.status for s in summary.stages] == ["succeeded", "failed"]
    assert summary.metrics_push.startswith("failed: http://127.0.0.1:9: ") and "metrics.pushgateway_url" in (
        summary.metrics_push), "locally there are no secret scopes: the URL is used"
    written = families(Path(summary.metrics_file).read_text())
    assert written["mlops_run_success"][0].value == 0.0
    failed = {s.labels["stage"] for s in written["mlops_stage_status"]
              if s.labels["mlops_stage_status"] == "failed" and s.value == 1.0}
    assert failed == {"broken"}


def test_where_secret_scopes_exist_the_url_comes_from_the_secret(local_runtime, make_root, tmp_path, pushgateway,
                                                                monkeypatch):
    url, received = pushgateway
    rt = local_runtime
    root = with_metrics(make_root(tmp_path / "project"), pushgateway_url="http://127.0.0.1:9",
                        pushgateway_secret={"scope": "observability", "key": "pushgateway_url"})
    asked = []
    monkeypatch.setattr(rt, "secret", lambda scope, key: asked.append((scope, key)) or f"{url}\n")
    summary = pipeline.run_stages(rt, ["bootstrap"], log=lambda _: None, root=root)
    assert asked == [("observability", "pushgateway_url")] and len(received) == 1
    assert summary.metrics_push.startswith(f"pushed to {url}")


def test_a_pushgateway_url_without_a_scheme_names_the_key_and_the_fix(make_root, tmp_path):
    root = with_metrics(make_root(tmp_path / "project"), pushgateway_url="pushgateway:9091")
    with pytest.raises(ConfigError, match=r"metrics\.pushgateway_url: 'pushgateway:9091' is not a URL.*Fix:"):
        load_project(root)
    secret = with_metrics(root, pushgateway_secret={"scope": "obs", "key": "url"})
    assert load_project(secret).metrics.pushgateway_secret == ("obs", "url")
