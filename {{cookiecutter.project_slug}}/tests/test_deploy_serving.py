"""The deploy_serving stage: the endpoint configuration per mode (offline, databricks-sdk's own classes),
the stage on a local runtime with and without @champion, and the Databricks update path on a stand-in
workspace client (create once, then nothing changes until the aliases do)."""

from __future__ import annotations

import json
from pathlib import Path

import databricks.sdk
import pytest
import yaml
from databricks.sdk.errors import NotFound
from databricks.sdk.service.serving import (
    AiGatewayRateLimitKey,
    AiGatewayRateLimitRenewalPeriod,
    EndpointCoreConfigInput,
    EndpointCoreConfigOutput,
    EndpointTag,
    ServingEndpointDetailed,
)

from {{ cookiecutter.package_name }}.config import ServingConfig, bundle_tags, load_project
from {{ cookiecutter.package_name }}.context import RunContext
from {{ cookiecutter.package_name }}.ml.registry import set_alias
from {{ cookiecutter.package_name }}.runtime import DatabricksRuntime, LocalRuntime, ServingEndpoint
from {{ cookiecutter.package_name }}.stages import deploy_serving
from {{ cookiecutter.package_name }}.stages.deploy_serving import NO_CHAMPION, endpoint_name, endpoint_spec
from {{ cookiecutter.package_name }}.tools.bundle_check import required_tags

PROJECT = Path(__file__).resolve().parents[1]
MODEL = "prod.churn.churn_model"


def spec(serving: ServingConfig, challenger: str | None = "4", target: str = "prod",
         tags: dict[str, str] | None = None) -> ServingEndpoint:
    return endpoint_spec(serving, model=MODEL, catalog="prod", schema="churn", target=target, champion="3",
                         challenger=challenger, tags=tags or {"project": "p"})


def served(endpoint: ServingEndpoint) -> dict[str, tuple[str, int, bool]]:
    """served entity -> (version, traffic %, scale to zero)."""
    share = {r.served_entity_name: r.traffic_percentage for r in endpoint.config.traffic_config.routes}
    return {e.name: (e.entity_version, share[e.name], e.scale_to_zero_enabled) for e in endpoint.config.served_entities}


@pytest.mark.parametrize("share", [0.1, 0.25, 0.333, 0.5, 0.995])
def test_canary_routes_the_share_to_the_challenger_in_whole_percents(share):
    endpoint = spec(ServingConfig(mode="canary", canary_share=share))
    entities = served(endpoint)
    assert entities["challenger"][1] == round(share * 100)
    assert entities["champion"][1] + entities["challenger"][1] == 100
    assert {e.entity_name for e in endpoint.config.served_entities} == {MODEL}
    assert (entities["champion"][0], entities["challenger"][0]) == ("3", "4")


def test_shadow_serves_the_challenger_with_no_traffic_and_lets_it_scale_to_zero():
    entities = served(spec(ServingConfig(mode="shadow"), target="prod"))
    assert entities == {"champion": ("3", 100, False), "challenger": ("4", 0, True)}


@pytest.mark.parametrize(("mode", "challenger"), [("off", "4"), ("canary", None), ("shadow", "3"), ("canary", "3")])
def test_champion_alone_when_off_or_without_another_challenger(mode, challenger):
    assert served(spec(ServingConfig(mode=mode), challenger=challenger)) == {"champion": ("3", 100, False)}


def test_scale_to_zero_and_workload_size_follow_the_target():
    serving = ServingConfig(mode="canary", workload_size="Medium", scale_to_zero_targets=("dev", "test"))
    assert {v[2] for v in served(spec(serving, target="dev")).values()} == {True}
    assert {v[2] for v in served(spec(serving, target="prod")).values()} == {False}
    assert {e.workload_size for e in spec(serving).config.served_entities} == {"Medium"}


def test_the_ai_gateway_logs_to_the_project_schema_and_limits_each_user():
    gateway = spec(ServingConfig(rate_limit_per_minute=120)).ai_gateway
    table = gateway.inference_table_config
    assert (table.catalog_name, table.schema_name, table.table_name_prefix, table.enabled) == (
        "prod", "churn", "churn_model_serving", True)
    (limit,) = gateway.rate_limits
    assert (limit.calls, limit.key, limit.renewal_period) == (
        120, AiGatewayRateLimitKey.USER, AiGatewayRateLimitRenewalPeriod.MINUTE)


@pytest.mark.bundle
def test_the_endpoint_carries_the_cost_tags_of_the_bundle():
    bundle = yaml.safe_load((PROJECT / "databricks.yml").read_text())
    tags = bundle_tags(PROJECT, "prod")
    assert sorted(tags) == sorted(required_tags(bundle)) and tags["env"] == "prod"
    assert tags["owner"] == bundle["variables"]["owner"]["default"] and "${" not in "".join(tags.values())
    endpoint = spec(ServingConfig(), tags=tags)
    assert {t.key: t.value for t in endpoint.tags} == {**tags, "component": "serving"}


def test_the_endpoint_name_is_deterministic_and_valid():
    assert endpoint_name("prod", "churn", MODEL) == "prod-churn-churn_model"
    schema = "dev_someone_with_a_long_user_name_customer_churn"  # development mode's dev_<user>_ prefix
    long = endpoint_name("dev", schema, f"dev.{schema}.customer_churn_model")
    assert len(long) == 63 and long == endpoint_name("dev", schema, "customer_churn_model")
    assert long != endpoint_name("dev", schema, "customer_churn_model_2") and long.startswith(f"dev-{schema}-")
    assert all(c.isalnum() or c in "-_" for c in long)
    assert spec(ServingConfig()).name == spec(ServingConfig()).config.name == "prod-churn-churn_model"


def test_the_configuration_round_trips_through_the_sdk_classes():
    endpoint = spec(ServingConfig(mode="canary", canary_share=0.2))
    body = endpoint.config.as_dict()
    assert EndpointCoreConfigInput.from_dict(body).as_dict() == body
    assert [r["traffic_percentage"] for r in body["traffic_config"]["routes"]] == [80, 20]
    back = ServingEndpoint.from_dict(json.loads(json.dumps(endpoint.as_dict())))
    assert back.as_dict() == endpoint.as_dict() and back.tags == endpoint.tags
    assert back.ai_gateway.rate_limits == endpoint.ai_gateway.rate_limits  # enums, not strings


@pytest.fixture
def local(tmp_path: Path):
    """A local runtime with its own MLflow store (the stage reads only the registry: no engine needed)."""
    rt = LocalRuntime(target="local", catalog="dev", schema="unit_tests", spark=None, local_dir=tmp_path / ".local")
    rt.configure_mlflow()
    lines: list[str] = []
    ctx = RunContext(root=PROJECT, run_id="r1", project=load_project(PROJECT), contracts={}, model_name="churn_model",
                     experiment="e", log=lines.append)
    return rt, ctx, tmp_path


def test_the_stage_waits_for_the_first_champion_then_writes_the_configuration(local):
    import mlflow

    rt, ctx, tmp_path = local
    assert deploy_serving.run(rt, ctx).details == {"skipped": NO_CHAMPION}  # no model at all yet
    client = mlflow.MlflowClient()
    client.create_registered_model(ctx.model_name)
    for _ in range(2):
        client.create_model_version(ctx.model_name, source=str(tmp_path))
    assert deploy_serving.run(rt, ctx).details == {"skipped": NO_CHAMPION}  # versions, none promoted

    set_alias(client, ctx.model_name, "champion", "1", "test")
    set_alias(client, ctx.model_name, "challenger", "2", "test")
    first = deploy_serving.run(rt, ctx).details
    path = Path(first["config"])
    assert first["action"] == "written" and path == tmp_path / ".local" / "serving" / f"{first['endpoint']}.json"
    written = ServingEndpoint.from_dict(json.loads(path.read_text()))
    assert written.name == endpoint_name("dev", "unit_tests", "churn_model")
    mode = ctx.project.serving.mode
    assert {e.entity_version for e in written.config.served_entities} == ({"1"} if mode == "off" else {"1", "2"})
    assert "serve --target local --port 8080" in first["serve"]
    assert deploy_serving.run(rt, ctx).details["action"] == "unchanged"  # same aliases: nothing to do

    set_alias(client, ctx.model_name, "champion", "2", "test")  # promoted: @challenger is @champion
    assert deploy_serving.run(rt, ctx).details["action"] == "written"
    promoted = ServingEndpoint.from_dict(json.loads(path.read_text()))
    assert [(e.name, e.entity_version) for e in promoted.config.served_entities] == [("champion", "2")]
    set_alias(client, ctx.model_name, "champion", "1", "rollback: worse live")  # v2 rolled back: never served again
    rolled_back = deploy_serving.run(rt, ctx).details
    assert "v2" not in rolled_back["traffic"] and rolled_back["traffic"] == "champion v1 100%"


class FakeEndpoints:
    """The serving-endpoints API as far as the runtime uses it, keeping one endpoint in memory."""

    def __init__(self) -> None:
        self.endpoint: ServingEndpointDetailed | None = None
        self.calls: list[str] = []

    def get(self, name: str) -> ServingEndpointDetailed:
        if self.endpoint is None:
            raise NotFound(f"{name} does not exist")
        return self.endpoint

    def create_and_wait(self, name, *, config, ai_gateway, tags):
        self.calls.append("create")
        self.endpoint = ServingEndpointDetailed(
            name=name, config=EndpointCoreConfigOutput.from_dict(config.as_dict()), ai_gateway=ai_gateway, tags=tags)

    def update_config_and_wait(self, name, *, served_entities, traffic_config):
        self.calls.append("update_config")
        self.endpoint.config = EndpointCoreConfigOutput.from_dict(
            {"served_entities": [e.as_dict() for e in served_entities], "traffic_config": traffic_config.as_dict()})

    def put_ai_gateway(self, name, *, inference_table_config, rate_limits):
        self.calls.append("put_ai_gateway")

    def patch(self, name, *, add_tags):
        self.calls.append("patch")
        self.endpoint.tags = [*[t for t in self.endpoint.tags if t.key not in {a.key for a in add_tags}], *add_tags]


def test_the_databricks_runtime_creates_once_and_then_changes_only_what_differs(monkeypatch):
    api = FakeEndpoints()

    class FakeClient:
        serving_endpoints = api
        config = type("Config", (), {"host": "https://example.cloud.databricks.com"})()

    monkeypatch.setattr(databricks.sdk, "WorkspaceClient", FakeClient)
    rt = DatabricksRuntime(target="prod", catalog="prod", schema="churn", spark=None)
    serving = ServingConfig(mode="canary", canary_share=0.1)
    assert rt.deploy_serving_endpoint(spec(serving))["action"] == "created"
    assert rt.deploy_serving_endpoint(spec(serving)) == {
        "endpoint": "prod-churn-churn_model", "action": "unchanged",
        "url": "https://example.cloud.databricks.com/ml/endpoints/prod-churn-churn_model"}
    assert api.calls == ["create"]
    assert rt.deploy_serving_endpoint(spec(serving, challenger=None))["action"] == "updated served entities"
    api.endpoint.tags = [*api.endpoint.tags, EndpointTag(key="team_note", value="set by hand")]
    assert rt.deploy_serving_endpoint(spec(serving, challenger=None, tags={"project": "q"}))["action"] == "updated tags"
    assert api.calls == ["create", "update_config", "patch"]
    assert {t.key: t.value for t in api.endpoint.tags}["team_note"] == "set by hand"
