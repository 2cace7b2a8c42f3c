"""The local real-time router over real HTTP: canary share, shadow answers logged and never returned,
malformed requests, and a promotion and a rollback served without a restart.

Two small MLflow models stand in for the versions (their answers tell them apart); the router and
MLflow's scoring code are the real ones, served by uvicorn on a loopback port."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import requests
import uvicorn
import yaml
from deltalake import DeltaTable
from mlflow.models import infer_signature

from {{ cookiecutter.package_name }}.config import ServingConfig
from {{ cookiecutter.package_name }}.ml import registry
from {{ cookiecutter.package_name }}.runtime import LocalRuntime
from {{ cookiecutter.package_name }}.tools.serve import SERVED_BY, Router, ServingLog, build_app

NAME = "serving_model"
INPUT = pd.DataFrame({"plan": ["basic", "premium"], "tenure_months": [3.0, 40.0]})


class Constant(mlflow.pyfunc.PythonModel):
    """Answers one probability for every row: which version answered is in the response."""

    def __init__(self, probability: float) -> None:
        self.probability = probability

    def predict(self, context: Any, model_input: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"probability": [self.probability] * len(model_input)})


PROBABILITY = {"1": 0.25, "2": 0.75}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    """A local registry with versions 1 (@champion) and 2 (@challenger)."""
    folder = tmp_path_factory.mktemp("serving")
    rt = LocalRuntime(target="local", catalog="dev", schema="serving", spark=None, local_dir=folder / ".local")
    rt.configure_mlflow()
    client = registry.mlflow_client()
    client.create_registered_model(NAME)
    signature = infer_signature(INPUT, pd.DataFrame({"probability": [0.5, 0.5]}))
    for version, probability in PROBABILITY.items():
        # pip_requirements given: MLflow would otherwise infer them by importing the model in a subprocess
        mlflow.pyfunc.save_model(folder / f"v{version}", python_model=Constant(probability), signature=signature,
                                 pip_requirements=["mlflow"])
        assert client.create_model_version(NAME, str(folder / f"v{version}")).version == int(version)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    yield rt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The router app on a loopback port, in a thread of this process."""

    def __init__(self, rt: LocalRuntime, settings: ServingConfig, seed: int = 11) -> None:
        self.log_path = Path(rt.local_dir) / f"serving_log_{settings.mode}"
        router = Router(NAME, settings, seed=seed)
        router.refresh()
        self.log = ServingLog(self.log_path, interval=0.2)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(build_app(router, self.log, log=lambda _: None),
                                                    host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.session = requests.Session()

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the router did not start within 20 s"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def predict(self, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.url}/invocations", json=body, timeout=10, **kwargs)

    def served(self) -> dict[str, Any]:
        return self.session.get(f"{self.url}/version", timeout=10).json()

    def logged(self) -> pd.DataFrame:
        return DeltaTable(str(self.log_path)).to_pandas()


RECORDS = {"dataframe_records": INPUT.to_dict(orient="records")}


def probabilities(response: requests.Response) -> list[float]:
    assert response.status_code == 200, response.text
    return [row["probability"] for row in response.json()["predictions"]]


def test_canary_share_holds_and_each_answer_comes_from_the_version_named(store: LocalRuntime) -> None:
    share, requests_sent = 0.3, 300
    with Server(store, ServingConfig(mode="canary", canary_share=share, refresh_seconds=30)) as server:
        assert server.served() == {**server.served(), "champion": "1", "challenger": "2", "mode": "canary",
                                   "canary_share": share}
        by_version = []
        for _ in range(requests_sent):
            response = server.predict(RECORDS)
            version = response.headers[SERVED_BY].split(":")[1]
            assert probabilities(response) == [PROBABILITY[version]] * len(INPUT)
            by_version.append(version)
    to_challenger = by_version.count("2")
    spread = 4 * math.sqrt(requests_sent * share * (1 - share))  # four standard deviations of a binomial
    assert abs(to_challenger - share * requests_sent) <= spread, (to_challenger, requests_sent)
    logged = server.logged()
    assert len(logged) == requests_sent
    assert (logged["served_version"] == "2").sum() == to_challenger
    assert logged["shadow_response"].isna().all()


def test_shadow_answers_are_logged_and_never_returned(store: LocalRuntime) -> None:
    with Server(store, ServingConfig(mode="shadow", refresh_seconds=30)) as server:
        assert server.served()["mode"] == "shadow"
        for i in range(20):
            response = server.predict(RECORDS, headers={"x-request-id": f"r{i}"})
            assert response.headers[SERVED_BY] == "champion:1"
            assert probabilities(response) == [PROBABILITY["1"]] * len(INPUT)
    logged = server.logged().sort_values("request_id")
    assert sorted(logged["request_id"]) == sorted(f"r{i}" for i in range(20))
    assert set(logged["served_version"]) == {"1"} and set(logged["shadow_version"]) == {"2"}
    for returned, shadow in zip(logged["response"], logged["shadow_response"], strict=True):
        assert json.loads(returned)["predictions"][0]["probability"] == PROBABILITY["1"]
        assert json.loads(shadow)["predictions"][0]["probability"] == PROBABILITY["2"]
    assert json.loads(logged["request"].iloc[0]) == RECORDS


def test_malformed_requests_get_a_4xx_with_a_message_and_the_server_goes_on(store: LocalRuntime) -> None:
    with Server(store, ServingConfig(mode="off", refresh_seconds=30)) as server:
        not_json = server.session.post(f"{server.url}/invocations", data="{not json",
                                       headers={"content-type": "application/json"}, timeout=10)
        assert not_json.status_code == 400 and "JSON" in not_json.json()["message"]
        missing = server.predict({"dataframe_records": [{"plan": "basic"}]})
        assert missing.status_code == 400 and "tenure_months" in missing.json()["message"]
        unknown_key = server.predict({"rows": [[1, 2]]})
        assert unknown_key.status_code == 400 and "dataframe_split" in unknown_key.json()["message"]
        wrong_type = server.session.post(f"{server.url}/invocations", data="plan", timeout=10,
                                         headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415 and "content types" in wrong_type.text
        split = {"dataframe_split": INPUT.to_dict(orient="split", index=False)}
        assert probabilities(server.predict(split)) == [PROBABILITY["1"]] * len(INPUT)
    logged = server.logged()
    assert sorted(logged["status_code"]) == [200, 400, 400, 400, 415]


def test_promotion_and_rollback_change_what_is_served_without_a_restart(store: LocalRuntime) -> None:
    client = registry.mlflow_client()

    def wait_for(server: Server, champion: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while (served := server.served())["champion"] != champion:
            assert time.monotonic() < deadline, f"still serving {served} 20 s after the alias moved"
            time.sleep(0.05)
        return served

    with Server(store, ServingConfig(mode="off", refresh_seconds=0.1)) as server:
        assert probabilities(server.predict(RECORDS)) == [PROBABILITY["1"]] * len(INPUT)
        try:
            client.set_registered_model_alias(NAME, "champion", "2")
            assert wait_for(server, "2")["challenger"] is None  # the promoted challenger is the champion now
            assert probabilities(server.predict(RECORDS)) == [PROBABILITY["2"]] * len(INPUT)
            client.set_registered_model_alias(NAME, "champion", "1")
            assert wait_for(server, "1")["challenger"] == "2"
            assert probabilities(server.predict(RECORDS)) == [PROBABILITY["1"]] * len(INPUT)
            # A rollback from 2 (recorded in the audit trail) keeps 2 out of the canary and the shadow.
            registry.set_alias(client, NAME, "champion", "2", "promote: trial", "ci")
            wait_for(server, "2")
            registry.set_alias(client, NAME, "champion", "1", "rollback: worse live", "oncall")
            assert wait_for(server, "1")["challenger"] is None
            assert {server.predict(RECORDS).headers[SERVED_BY] for _ in range(5)} == {"champion:1"}
        finally:
            client.set_registered_model_alias(NAME, "champion", "1")


def test_serve_names_what_to_do_on_a_databricks_target_without_a_serving_section_or_a_champion(
        cli: Any, make_root: Any, tmp_path: Path) -> None:
    root = make_root(tmp_path / "project")
    remote = cli("serve", "--target", "dev", cwd=root)
    assert remote.returncode == 2 and "deploy_serving task" in remote.stderr and "--target local" in remote.stderr
    nothing = cli("serve", "--port", str(free_port()), cwd=root)
    assert nothing.returncode == 2 and "no @champion" in nothing.stderr
    path = root / "conf" / "project.yml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "serving": False}))
    off = cli("serve", "--port", str(free_port()), cwd=root)
    assert off.returncode == 2 and "no serving section" in off.stderr
