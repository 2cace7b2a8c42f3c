"""The deploy_serving stage: a Databricks Model Serving endpoint for ``@champion`` (and ``@challenger``).

Why the bundle declares no serving endpoint: an endpoint must serve a model version, and on the first
``databricks bundle deploy`` of a target no version exists yet, so a ``model_serving_endpoints``
resource would fail that deploy (and pin a version number in YAML that every promotion would have to
edit).  This stage runs after ``promote`` instead: with no ``@champion`` yet it is skipped; from the
first promotion on it creates the endpoint through databricks-sdk, and later runs bring it up to date
with the aliases.  The runtime makes the call (``Runtime.deploy_serving_endpoint``): on Databricks the
endpoint; locally a JSON file with the same configuration, and ``serve`` answers requests.

What the endpoint serves (``serving`` in conf/project.yml):

* ``off``, or no ``@challenger`` other than ``@champion``: ``@champion`` alone, 100% of the traffic;
* ``canary``: ``@challenger`` answers ``canary_share`` of the requests (whole percentages summing to 100);
* ``shadow``: ``@challenger`` is served beside ``@champion`` with a 0% route.  Databricks does not mirror
  requests, so no live request reaches it by itself: the shadow evidence is the batch ``score``
  stage's challenger scores, and requests sent to it by name
  (``/serving-endpoints/<endpoint>/served-models/challenger/invocations``), which the inference table
  records like any other.  With no routed traffic it scales to zero in every target.

A ``@challenger`` that was rolled back from ``@champion`` is not served again.  The endpoint's name is
``<catalog>-<schema>-<model>`` (at most 63 characters): one endpoint per registered model, so targets
(each has its own catalog or schema) and developers (development mode's ``dev_<user>_`` schema) never
share one.  The AI gateway logs every request to the inference table ``<model>_serving_payload`` in
the project's schema and limits each user to ``rate_limit_per_minute`` calls.  The tags are the cost
tags of ``databricks.yml`` ``presets.tags``, the ones every job carries, plus ``component: serving``.
"""

from __future__ import annotations

import hashlib
import re

from ..config import ServingConfig, bundle_tags
from ..context import RunContext, StageOutput
from ..ml.registry import mlflow_client, served_versions
from ..runtime import Runtime, ServingEndpoint

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"deploy_serving": 95}

# Model Serving endpoint names: 1 to 63 letters, digits, dashes and underscores.
MAX_ENDPOINT_NAME = 63
NO_CHAMPION = "no @champion yet: the endpoint is created by the first promotion"


def endpoint_name(catalog: str, schema: str, model: str) -> str:
    """``<catalog>-<schema>-<model>`` (the model's short name), other characters replaced by ``-``;
    a longer name keeps its first 54 characters and ends in 8 hex digits of its hash (stable)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{catalog}-{schema}-{model.rsplit('.', 1)[-1]}")
    if len(name) > MAX_ENDPOINT_NAME:
        name = f"{name[:MAX_ENDPOINT_NAME - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


def endpoint_spec(serving: ServingConfig, *, model: str, catalog: str, schema: str, target: str, champion: str,
                  challenger: str | None, tags: dict[str, str]) -> ServingEndpoint:
    """The endpoint for ``model`` (its name in the registry) serving version ``champion``, and
    ``challenger`` by ``serving.mode`` when it is another version; inference table in
    ``catalog.schema``; scale to zero when ``target`` is one of ``serving.scale_to_zero_targets``."""
    # Imported here: databricks-sdk takes about a second to import, and a run with no champion yet never needs it.
    from databricks.sdk.service.serving import (
        AiGatewayConfig,
        AiGatewayInferenceTableConfig,
        AiGatewayRateLimit,
        AiGatewayRateLimitKey,
        AiGatewayRateLimitRenewalPeriod,
        EndpointCoreConfigInput,
        EndpointTag,
        Route,
        ServedEntityInput,
        TrafficConfig,
    )

    short = model.rsplit(".", 1)[-1]
    scale_to_zero = target in serving.scale_to_zero_targets

    def entity(alias: str, version: str, to_zero: bool) -> ServedEntityInput:
        return ServedEntityInput(name=alias, entity_name=model, entity_version=str(version),
                                 workload_size=serving.workload_size, scale_to_zero_enabled=to_zero)

    entities = [entity("champion", champion, scale_to_zero)]
    routes = [Route(traffic_percentage=100, served_entity_name="champion")]
    if serving.mode != "off" and challenger is not None and str(challenger) != str(champion):
        share = round(serving.canary_share * 100) if serving.mode == "canary" else 0
        entities.append(entity("challenger", challenger, scale_to_zero if share else True))
        routes = [Route(traffic_percentage=100 - share, served_entity_name="champion"),
                  Route(traffic_percentage=share, served_entity_name="challenger")]
    gateway = AiGatewayConfig(
        inference_table_config=AiGatewayInferenceTableConfig(
            catalog_name=catalog, schema_name=schema, table_name_prefix=f"{short}_serving", enabled=True),
        rate_limits=[AiGatewayRateLimit(calls=serving.rate_limit_per_minute, key=AiGatewayRateLimitKey.USER,
                                        renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)])
    config = EndpointCoreConfigInput(name=endpoint_name(catalog, schema, short), served_entities=entities,
                                     traffic_config=TrafficConfig(routes=routes))
    labels = {**tags, "component": "serving"}
    return ServingEndpoint(config, gateway, [EndpointTag(key=k, value=labels[k]) for k in sorted(labels)])


def traffic(endpoint: ServingEndpoint) -> str:
    """``champion v3 90%, challenger v4 10%``: who answers what share of the requests."""
    versions = {e.name: e.entity_version for e in endpoint.config.served_entities or []}
    routes = endpoint.config.traffic_config.routes if endpoint.config.traffic_config else []
    return ", ".join(f"{r.served_entity_name} v{versions[r.served_entity_name]} {r.traffic_percentage}%"
                     for r in routes or [])


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    serving = ctx.project.serving
    if serving is None:
        return StageOutput(details={"skipped": "conf/project.yml has no serving section: batch inference only"})
    rt.configure_mlflow()
    registry = mlflow_client()
    name = ctx.model_name
    champion, challenger = served_versions(registry, name)
    if champion is None:
        return StageOutput(details={"skipped": NO_CHAMPION})
    endpoint = endpoint_spec(serving, model=name, catalog=rt.catalog, schema=rt.schema, target=rt.target,
                             champion=champion, challenger=challenger, tags=bundle_tags(ctx.root, rt.target))
    ctx.log(f"  deploy_serving: {endpoint.name} ({serving.mode}): {traffic(endpoint)}")
    result = rt.deploy_serving_endpoint(endpoint)
    ctx.log(f"  deploy_serving: {endpoint.name}: {result.get('action')}")
    return StageOutput(details={"model": name, "mode": serving.mode, "traffic": traffic(endpoint), **result})
