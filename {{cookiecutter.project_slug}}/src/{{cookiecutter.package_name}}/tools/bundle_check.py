"""``bundle-check``: what ``databricks bundle validate`` checks, without a workspace.

The Databricks CLI needs workspace credentials even to validate.  This module repeats the
checks that need none, for every target after target merging:

* includes: Go ``filepath.Glob`` semantics from the bundle root (no recursive ``**``), a
  non-glob include must exist, only .yml/.yaml/.json; duplicate resource keys across files;
* target merging (mappings merged, other lists concatenated, keyed lists such as tasks merged
  by ``task_key``), variables that a target sets must be declared, and every variable resolves
  (``--var`` > ``BUNDLE_VAR_x`` > target value > default);
* ``presets.tags`` applied as the CLI applies them (``apply_presets``): root and target presets
  merged, development mode's ``dev`` tag, then the tags copied onto jobs, experiments, models and
  clusters;
* every ``${...}`` reference points at something that exists;
* typed resources through the ``databricks-bundles`` dataclasses (unknown fields at any
  depth, bad numbers and enum values);
* notebook and Python file paths relative to the YAML file, the notebook header;
* ``job_cluster_key``, ``environment_key`` and ``depends_on`` all defined; ``mode``;
* this project's governance and cost rules (``check_policies``): the cost tags declared once in
  the root ``presets.tags`` on every job and job cluster, timeouts, concurrency limits and health
  rules, autoscale and a cluster policy, and ``run_as`` a service principal in production targets;
* one writer at a time (``check_single_writer``): every job runs at most once at a time and queues
  the next run, and each notebook (one stage, one set of tables it writes) belongs to one job, which
  other jobs start through ``run_job_task``;
* least privilege in production targets (``check_least_privilege``): ``users`` / ``account users``
  and reader groups get read rights only, and only the MLOps group may tag or alias the model;
* dashboards and SQL alerts (``check_dashboards``, ``check_alerts``): each ``.lvdash.json`` file exists
  and is a dashboard (datasets, pages, widgets that name existing datasets and fields, declared query
  parameters), every table a query reads is one this project writes or a documented system table, the
  warehouse is a lookup by name or a warehouse id; notification destinations (``check_notifications``)
  are UUIDs, named by the variable that holds them.

Each problem is one line: ``<file>: <key path>: <what is wrong>``.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import names
from ..config import ConfigError, load_project, load_yaml
from ..contract import load_contracts

NOTEBOOK_HEADER = "# Databricks notebook source"
ROOT_KEYS = {
    "bundle", "include", "variables", "targets", "resources", "workspace", "presets",
    "permissions", "run_as", "artifacts", "sync", "experimental", "python", "scripts",
}
TARGET_KEYS = {
    "default", "mode", "workspace", "variables", "resources", "run_as", "presets",
    "permissions", "bundle", "artifacts", "sync", "git", "cluster_id", "compute_id",
}
INCLUDED_FILE_KEYS = {"resources", "targets", "variables"}
# Lists merged element-wise by a key when a target overrides them.
KEYED_LISTS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "parameters": "name",
    "environments": "environment_key",
    "grants": "principal",
}
MODES = ("development", "production")
# The placeholder user offline; development mode tags resources with its short name.
OFFLINE_USER = "offline-user@example.com"
OFFLINE_SHORT_NAME = "offline_user"
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-\[\]]+)\}")
NOT_CHECKED_OFFLINE = (
    "workspace authentication and the current user (a placeholder user is used)",
    "that catalogs, groups, service principals and cluster policies exist",
    "lookup variables (their values come from the workspace)",
    "permission levels that the workspace accepts for your identity",
)
# Everyone in the workspace or account: never more than read rights in a production target.
BROAD_PRINCIPALS = {"users", "account users"}
# Rights that only read: permission levels (jobs, experiments, ...) and Unity Catalog privileges.
READ_LEVELS = {"CAN_VIEW", "CAN_READ"}
READ_PRIVILEGES = {"BROWSE", "USE_CATALOG", "USE_SCHEMA", "SELECT", "EXECUTE", "READ_VOLUME", "READ_FILES"}
# Privileges that tag a registered model or move its aliases (@champion): the MLOps group's alone.
MODEL_CONTROL_PRIVILEGES = {"APPLY_TAG", "MANAGE", "ALL_PRIVILEGES"}
PRINCIPAL_FIELDS = ("group_name", "user_name", "service_principal_name")


def resource_classes() -> dict[str, type]:
    """Resource type (as in ``resources:``) to its typed dataclass in databricks-bundles."""
    from databricks.bundles.alerts import Alert
    from databricks.bundles.dashboards import Dashboard
    from databricks.bundles.experiments import MlflowExperiment
    from databricks.bundles.jobs import Job
    from databricks.bundles.model_serving_endpoints import ModelServingEndpoint
    from databricks.bundles.quality_monitors import QualityMonitor
    from databricks.bundles.registered_models import RegisteredModel
    from databricks.bundles.schemas import Schema
    from databricks.bundles.volumes import Volume

    return {
        "jobs": Job,
        "schemas": Schema,
        "volumes": Volume,
        "registered_models": RegisteredModel,
        "experiments": MlflowExperiment,
        "quality_monitors": QualityMonitor,
        "model_serving_endpoints": ModelServingEndpoint,
        "dashboards": Dashboard,
        "alerts": Alert,
    }


@dataclass
class Bundle:
    root: Path
    config: dict[str, Any]
    origins: dict[tuple[str, str], Path] = field(default_factory=dict)  # (type, key) -> file
    problems: list[str] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> resolved variables
    # Tables the pipeline writes (name -> where it is declared) and whether real-time serving is
    # configured: what dashboard and alert queries may read (see project_tables).
    written: dict[str, str] = field(default_factory=dict)
    serving: bool = False

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def _load_yaml(path: Path, problems: list[str], root: Path) -> dict[str, Any] | None:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(f"{path.relative_to(root)}: not valid YAML: {exc}".replace("\n", " "))
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path.relative_to(root)}: the top level must be a mapping")
        return None
    return data


def _go_glob(root: Path, pattern: str) -> list[Path]:
    """Go's filepath.Glob: ``**`` is an ordinary ``*`` (no recursion)."""
    flat = re.sub(r"\*\*+", "*", pattern)
    return sorted(root / p for p in glob.glob(flat, root_dir=root, recursive=False))


def load_bundle(root: Path) -> Bundle:
    """Read databricks.yml and its includes, collecting structural problems."""
    problems: list[str] = []
    main_file = root / "databricks.yml"
    if not main_file.is_file():
        return Bundle(root, {}, problems=[f"{main_file}: missing (the bundle root needs databricks.yml)"])
    config = _load_yaml(main_file, problems, root) or {}
    bundle = Bundle(root, config, problems=problems)
    for key in config:
        if key not in ROOT_KEYS:
            problems.append(f"databricks.yml: {key}: unknown top-level key")
    resources = config.setdefault("resources", {}) or {}
    config["resources"] = resources
    for rtype, items in resources.items():
        for rkey in items or {}:
            bundle.origins[(rtype, rkey)] = main_file

    includes = config.get("include", []) or []
    if not isinstance(includes, list):
        problems.append("databricks.yml: include: must be a list of paths or globs")
        includes = []
    for pattern in includes:
        if not str(pattern).endswith((".yml", ".yaml", ".json")):
            problems.append(f"databricks.yml: include: {pattern!r}: only .yml, .yaml and .json files")
            continue
        matches = _go_glob(root, pattern)
        if not matches and not glob.has_magic(pattern):
            problems.append(f"databricks.yml: include: {pattern!r}: no such file")
        for path in matches:
            if path.suffix not in (".yml", ".yaml", ".json"):
                continue
            data = _load_yaml(path, problems, root)
            if data is None:
                continue
            for key in data:
                if key not in INCLUDED_FILE_KEYS:
                    problems.append(f"{bundle.rel(path)}: {key}: not allowed in an included file")
            for rtype, items in (data.get("resources") or {}).items():
                target_items = resources.setdefault(rtype, {})
                for rkey, value in (items or {}).items():
                    if rkey in target_items:
                        first = bundle.rel(bundle.origins[(rtype, rkey)])
                        problems.append(
                            f"{bundle.rel(path)}: resources.{rtype}.{rkey}: duplicate resource key "
                            f"(also defined in {first})"
                        )
                        continue
                    target_items[rkey] = value
                    bundle.origins[(rtype, rkey)] = path
            for section in ("targets", "variables"):
                for name, value in (data.get(section) or {}).items():
                    merged = config.setdefault(section, {})
                    merged[name] = deep_merge(merged.get(name, {}), value)
    return bundle


def deep_merge(base: Any, override: Any, key: str | None = None) -> Any:
    """Merge as the CLI merges a target into the root (libs/dyn/merge/merge.go in databricks/cli):
    null yields the other side, mappings merge recursively, lists are concatenated, other values
    are replaced.  Lists of KEYED_LISTS are then merged element-wise by their key, as the CLI's
    MergeJobTasks/MergeJobClusters/... mutators do after concatenating."""
    if override is None:
        return copy.deepcopy(base)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = deep_merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in KEYED_LISTS:
        id_key = KEYED_LISTS[key]
        merged_list = [copy.deepcopy(item) for item in base]
        positions = {item.get(id_key): i for i, item in enumerate(merged_list) if isinstance(item, dict)}
        for item in override:
            ident = item.get(id_key) if isinstance(item, dict) else None
            if ident is not None and ident in positions:
                merged_list[positions[ident]] = deep_merge(merged_list[positions[ident]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    if isinstance(base, list) and isinstance(override, list):
        return copy.deepcopy(base) + copy.deepcopy(override)
    return copy.deepcopy(override)


def merge_target(config: dict[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    target = (config.get("targets") or {}).get(name) or {}
    where = f"databricks.yml: targets.{name}"
    for key in target:
        if key not in TARGET_KEYS:
            problems.append(f"{where}.{key}: unknown target key")
    mode = target.get("mode")
    if mode is not None and mode not in MODES:
        problems.append(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    merged = {k: copy.deepcopy(v) for k, v in config.items() if k not in ("targets", "include")}
    for section in ("bundle", "workspace", "resources", "presets", "permissions", "artifacts", "sync"):
        if section in target:
            merged[section] = deep_merge(merged.get(section, {} if section != "permissions" else []),
                                         target[section], section)
    for section in ("run_as", "mode"):
        if section in target:
            merged[section] = copy.deepcopy(target[section])
    declared = config.get("variables") or {}
    for var in target.get("variables") or {}:
        if var not in declared:
            problems.append(f"{where}.variables.{var}: variable is not declared in the top-level variables")
    merged["_target_variables"] = target.get("variables") or {}
    return merged


def resolve_variables(
    config: dict[str, Any], target_name: str, target_vars: dict[str, Any], cli_vars: dict[str, str],
    problems: list[str],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in (config.get("variables") or {}).items():
        spec = spec if isinstance(spec, dict) else {"default": spec}
        env_name = f"BUNDLE_VAR_{name}"
        if name in cli_vars:
            values[name] = cli_vars[name]
        elif env_name in os.environ:
            values[name] = os.environ[env_name]
        elif name in target_vars:
            value = target_vars[name]
            if isinstance(value, dict) and "lookup" in value:
                values[name] = f"<lookup:{name}>"
            else:
                values[name] = value.get("default", value) if isinstance(value, dict) else value
        elif "default" in spec:
            values[name] = spec["default"]
        elif "lookup" in spec:
            values[name] = f"<lookup:{name}>"
        else:
            problems.append(
                f"databricks.yml: variables.{name}: no value assigned to required variable for target "
                f"{target_name} (set a default, targets.{target_name}.variables.{name}, --var or {env_name})"
            )
    return values


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any, Any, Any]]:
    """Yield (path, container, key, value) for every scalar string in the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(v, str):
                yield sub, node, k, v
            else:
                yield from _walk(v, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            sub = f"{path}[{i}]"
            if isinstance(v, str):
                yield sub, node, i, v
            else:
                yield from _walk(v, sub)


def interpolate(merged: dict[str, Any], variables: dict[str, Any], target: str, problems: list[str]) -> None:
    """Replace ``${var.x}``, ``${bundle.*}`` and ``${workspace.*}``; check ``${resources.*}``."""
    bundle_name = str((merged.get("bundle") or {}).get("name", ""))
    workspace = dict(merged.get("workspace") or {})
    user = OFFLINE_USER
    workspace.setdefault("root_path", f"/Workspace/Users/{user}/.bundle/{bundle_name}/{target}")
    known = {
        "bundle.name": bundle_name,
        "bundle.target": target,
        "workspace.current_user.userName": user,
        "workspace.current_user.short_name": OFFLINE_SHORT_NAME,
        "workspace.current_user.domain_friendly_name": OFFLINE_SHORT_NAME,
        "workspace.root_path": workspace["root_path"],
        "workspace.file_path": workspace.get("file_path", f"{workspace['root_path']}/files"),
        "workspace.host": str(workspace.get("host", "")),
    }
    resources = merged.get("resources") or {}

    def lookup(ref: str, where: str, depth: int = 0) -> Any:
        shown = "${" + ref + "}"
        if depth > 10:
            problems.append(f"{where}: {shown}: reference cycle")
            return ""
        if ref.startswith("var."):
            name = ref[4:].split(".")[0]
            if name not in variables:
                problems.append(f"{where}: {shown}: variable {name!r} is not declared")
                return ""
            return substitute_tree(copy.deepcopy(variables[name]), where, depth + 1)
        if ref.startswith("resources."):
            parts = ref.split(".")
            if len(parts) < 4 or parts[2] not in (resources.get(parts[1]) or {}):
                problems.append(f"{where}: {shown}: no such resource")
            return None  # resolved only at deploy time
        if ref in known:
            return known[ref]
        problems.append(f"{where}: {shown}: unknown reference")
        return ""

    def substitute(value: Any, where: str, depth: int = 0) -> Any:
        if not isinstance(value, str):
            return value
        whole = REFERENCE.fullmatch(value)
        if whole:
            result = lookup(whole.group(1), where, depth)
            return value if result is None else result

        def repl(match: re.Match[str]) -> str:
            result = lookup(match.group(1), where, depth)
            return match.group(0) if result is None else str(result)

        return REFERENCE.sub(repl, value)

    def substitute_tree(value: Any, where: str, depth: int) -> Any:
        if isinstance(value, dict | list):
            for path, container, key, leaf in list(_walk(value, where)):
                container[key] = substitute(leaf, path, depth)
            return value
        return substitute(value, where, depth)

    for section in ("bundle", "workspace", "resources", "presets", "run_as", "permissions"):
        for path, container, key, value in list(_walk(merged.get(section), section)):
            container[key] = substitute(value, path)


def check_resources(bundle: Bundle, merged: dict[str, Any], target: str, problems: list[str]) -> None:
    classes = resource_classes()
    for rtype, items in (merged.get("resources") or {}).items():
        for rkey, spec in (items or {}).items():
            origin = bundle.origins.get((rtype, rkey), bundle.root / "databricks.yml")
            where = f"{bundle.rel(origin)}: resources.{rtype}.{rkey}"
            cls = classes.get(rtype)
            if cls is None:
                problems.append(f"{where}: resource type {rtype!r} is not checked offline by this tool")
                continue
            if not isinstance(spec, dict):
                problems.append(f"{where}: must be a mapping")
                continue
            try:
                cls.from_dict(spec)
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"{where}: {exc} (target {target})")
            if rtype == "jobs":
                check_job(bundle, origin, where, spec, problems)


def _tasks(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, task in enumerate(job.get("tasks") or []):
        if isinstance(task, dict):
            yield f"tasks[{i}]", task
            nested = (task.get("for_each_task") or {}).get("task")
            if isinstance(nested, dict):
                yield f"tasks[{i}].for_each_task.task", nested


def check_job(bundle: Bundle, origin: Path, where: str, job: dict[str, Any], problems: list[str]) -> None:
    base = origin.parent
    clusters = {c.get("job_cluster_key") for c in job.get("job_clusters") or [] if isinstance(c, dict)}
    environments = {e.get("environment_key") for e in job.get("environments") or [] if isinstance(e, dict)}
    top_tasks = [t for t in job.get("tasks") or [] if isinstance(t, dict)]
    keys = [t.get("task_key") for t in top_tasks]
    for dup in sorted({k for k in keys if k and keys.count(k) > 1}):
        problems.append(f"{where}.tasks: task_key {dup!r} is used twice")
    for path, task in _tasks(job):
        name = f"{where}.{path}({task.get('task_key')})"
        for dep in task.get("depends_on") or []:
            if isinstance(dep, dict) and dep.get("task_key") not in keys:
                problems.append(f"{name}.depends_on: task {dep.get('task_key')!r} is not a task of this job")
        cluster = task.get("job_cluster_key")
        if cluster is not None and cluster not in clusters:
            problems.append(f"{name}.job_cluster_key: {cluster!r} is not defined in job_clusters")
        env = task.get("environment_key")
        if env is not None and env not in environments:
            problems.append(f"{name}.environment_key: {env!r} is not defined in environments")
        if task.get("existing_cluster_id"):
            problems.append(f"{name}.existing_cluster_id: jobs must not run on all-purpose clusters")
        notebook = (task.get("notebook_task") or {}).get("notebook_path")
        if notebook and not str(notebook).startswith(("/", "${")):
            file = _existing(base / notebook)
            if file is None:
                problems.append(f"{name}.notebook_task.notebook_path: {notebook!r} does not exist "
                                f"(relative to {bundle.rel(origin)})")
            elif not _is_notebook(file):
                problems.append(f"{name}.notebook_task.notebook_path: {bundle.rel(file)} does not start "
                                f"with {NOTEBOOK_HEADER!r}")
        python_file = (task.get("spark_python_task") or {}).get("python_file")
        if python_file and not str(python_file).startswith(("/", "${", "dbfs:")):
            file = _existing(base / python_file)
            if file is None:
                problems.append(f"{name}.spark_python_task.python_file: {python_file!r} does not exist")
            elif _is_notebook(file):
                problems.append(f"{name}.spark_python_task.python_file: {bundle.rel(file)} is a notebook; "
                                "use notebook_task")


def _existing(path: Path) -> Path | None:
    for candidate in (path, path.with_name(path.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_notebook(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        return handle.readline().strip() == NOTEBOOK_HEADER


def check(root: Path, targets: list[str] | None = None, cli_vars: dict[str, str] | None = None
          ) -> tuple[list[str], list[str]]:
    """Return (problems, targets checked)."""
    bundle = load_bundle(root)
    problems = bundle.problems
    declared = list((bundle.config.get("targets") or {}).keys())
    if not declared:
        problems.append("databricks.yml: targets: no targets defined")
    defaults = [t for t in declared if (bundle.config["targets"][t] or {}).get("default")]
    if len(defaults) > 1:
        problems.append(f"databricks.yml: targets: more than one default target ({', '.join(defaults)})")
    chosen = targets or declared
    resources = bundle.config.get("resources") or {}
    if resources.get("dashboards") or resources.get("alerts"):
        bundle.written, bundle.serving = project_tables(root, problems), _serving_configured(root)
    for name in chosen:
        if name not in declared:
            problems.append(f"databricks.yml: targets.{name}: no such target (have {', '.join(declared)})")
            continue
        merged = resolve_target(bundle, name, cli_vars or {}, problems)
        check_resources(bundle, merged, name, problems)
        check_policies(bundle, merged, name, problems)
        check_single_writer(bundle, merged, name, problems)
        check_least_privilege(bundle, merged, name, problems)
        # The target as written, before ${...} substitution: it names the variable behind a value.
        raw = merge_target(bundle.config, name, [])
        raw.pop("_target_variables")
        check_dashboards(bundle, merged, raw, name, problems)
        check_alerts(bundle, merged, raw, name, problems)
        check_notifications(bundle, merged, raw, name, problems)
    check_variable_types(bundle.config, problems)
    unique = list(dict.fromkeys(problems))
    return unique, [t for t in chosen if t in declared]


def resolve_target(bundle: Bundle, name: str, cli_vars: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """The configuration as the CLI sees it for one target: merged, variables substituted."""
    merged = merge_target(bundle.config, name, problems)
    variables = resolve_variables(bundle.config, name, merged.pop("_target_variables"), cli_vars, problems)
    bundle.variables[name] = variables
    interpolate(merged, variables, name, problems)
    apply_presets(merged)
    return merged


def resolved(root: Path, target: str, cli_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """The resolved configuration of ``target`` (for tests and reports)."""
    bundle = load_bundle(root)
    return resolve_target(bundle, target, cli_vars or {}, bundle.problems)


def apply_presets(merged: dict[str, Any]) -> None:
    """Apply ``presets.tags`` to the resources of a merged, resolved target, as the CLI does.

    Source: databricks/cli, bundle/config/mutator/resourcemutator/apply_target_mode.go and
    apply_presets.go (https://github.com/databricks/cli/blob/main/bundle/config/mutator/resourcemutator/
    apply_presets.go), run after the target is merged (bundle/config/root.go MergeTargetOverrides merges
    the target's ``presets`` into the root ``presets``, key by key) and after ``${...}`` references
    are resolved (bundle/phases/initialize.go):

    * development mode adds the tag ``dev: <short name of the user>`` unless ``dev`` is set;
    * jobs: each preset tag is set where the job's own tag is missing or empty (a job's own
      non-empty tag wins);
    * experiments and (workspace) models: appended to ``tags`` where no tag has that key;
    * clusters (``resources.clusters``) and SQL warehouses: into their custom tags where absent
      (the CLI also normalises keys and values to the cloud's tag rules; not repeated here);
    * NOT job clusters, registered models, schemas, volumes, pipelines or serving endpoints.  A
      job cluster gets the job's tags from the Jobs service at run time instead: "tags: A map of
      tags associated with the job. These are forwarded to the cluster as cluster tags for jobs
      clusters" (Jobs API, JobSettings.tags; see ``cluster_tags``).

    Other presets (name prefix, pause status, concurrency) are not applied offline.
    """
    presets = merged.setdefault("presets", {}) or {}
    merged["presets"] = presets
    tags = dict(presets.get("tags") or {})
    if merged.get("mode") == "development" and "dev" not in tags:
        tags["dev"] = OFFLINE_SHORT_NAME
    if not tags:
        return
    presets["tags"] = tags
    ordered = sorted(tags.items())  # the CLI applies them sorted by key
    resources = merged.get("resources") or {}
    for job in (resources.get("jobs") or {}).values():
        if isinstance(job, dict):
            own = job.setdefault("tags", {}) or {}
            job["tags"] = own
            for key, value in ordered:
                if not own.get(key):
                    own[key] = value
    for rtype in ("experiments", "models"):
        for item in (resources.get(rtype) or {}).values():
            if isinstance(item, dict):
                own_list = item.setdefault("tags", []) or []
                item["tags"] = own_list
                have = {t.get("key") for t in own_list if isinstance(t, dict)}
                own_list.extend({"key": k, "value": v} for k, v in ordered if k not in have)
    for cluster in (resources.get("clusters") or {}).values():
        if isinstance(cluster, dict):
            custom = cluster.setdefault("custom_tags", {}) or {}
            cluster["custom_tags"] = custom
            for key, value in ordered:
                custom.setdefault(key, value)
    for warehouse in (resources.get("sql_warehouses") or {}).values():
        if isinstance(warehouse, dict):
            pairs = (warehouse.setdefault("tags", {}) or {}).setdefault("custom_tags", [])
            have = {t.get("key") for t in pairs if isinstance(t, dict)}
            pairs.extend({"key": k, "value": v} for k, v in ordered if k not in have)


def required_tags(config: dict[str, Any]) -> list[str]:
    """The cost tags every job and job cluster must carry: the keys of the root ``presets.tags``
    in databricks.yml, the one place they are declared (a pure ``${var.x}`` reference there
    names a complex variable whose default holds them)."""
    tags = (config.get("presets") or {}).get("tags")
    if isinstance(tags, str) and (ref := REFERENCE.fullmatch(tags)) and ref.group(1).startswith("var."):
        spec = (config.get("variables") or {}).get(ref.group(1)[4:])
        tags = spec.get("default") if isinstance(spec, dict) else None
    return [str(k) for k in tags] if isinstance(tags, dict) else []


def job_tags(job: dict[str, Any]) -> dict[str, Any]:
    """Tags a deployed job carries (after ``apply_presets``)."""
    return dict(job.get("tags") or {})


def cluster_tags(job: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Tags a job cluster runs with: the job's tags, which the Jobs service forwards to its job
    clusters, and the cluster's own ``custom_tags``."""
    custom = ((cluster or {}).get("new_cluster") or {}).get("custom_tags") or {}
    return {**job_tags(job), **custom} if isinstance(custom, dict) else job_tags(job)


def check_policies(bundle: Bundle, merged: dict[str, Any], target: str, problems: list[str]) -> None:
    """Governance and cost rules of this project: every job and job cluster carries the cost tags
    declared in the root ``presets.tags`` and is bounded (timeout, max concurrent runs, a
    run-duration health rule), job clusters autoscale under a policy, and production targets run
    as a service principal."""
    if merged.get("mode") == "production" and not (merged.get("run_as") or {}).get("service_principal_name"):
        problems.append(f"databricks.yml: targets.{target}.run_as: production targets must run as a service "
                        "principal")
    required = required_tags(bundle.config)
    if not required:
        problems.append("databricks.yml: presets.tags: declare the cost tags here, once, as a mapping of tag "
                        "name to value (every job and job cluster must carry them)")
    for key, job in ((merged.get("resources") or {}).get("jobs") or {}).items():
        origin = bundle.origins.get(("jobs", key), bundle.root / "databricks.yml")
        where = f"{bundle.rel(origin)}: resources.jobs.{key}"
        tags = job_tags(job)
        missing = [t for t in required if not tags.get(t)]
        if missing:
            problems.append(f"{where}.tags: missing cost tag(s) {', '.join(missing)} in target {target} (declare "
                            "them in databricks.yml presets.tags; a target's presets.tags may override a value)")
        if not job.get("timeout_seconds"):
            problems.append(f"{where}.timeout_seconds: every job needs one (cost bound)")
        metrics = [r.get("metric") for r in (job.get("health") or {}).get("rules") or [] if isinstance(r, dict)]
        if "RUN_DURATION_SECONDS" not in metrics:
            problems.append(f"{where}.health.rules: add a RUN_DURATION_SECONDS rule")
        for i, cluster in enumerate(job.get("job_clusters") or []):
            spec = (cluster or {}).get("new_cluster") or {}
            place = f"{where}.job_clusters[{i}].new_cluster"
            effective = cluster_tags(job, cluster)
            absent = [t for t in required if t not in missing and not effective.get(t)]
            if absent:
                problems.append(f"{place}.custom_tags: missing cost tag(s) {', '.join(absent)} in target {target}")
            custom = spec.get("custom_tags") or {}
            clash = [t for t in required if t in custom and tags.get(t) and custom[t] != tags[t]]
            if clash:
                problems.append(f"{place}.custom_tags: {', '.join(clash)} differ(s) from the job's tag in target "
                                f"{target} (the job's tags reach its clusters; declare cost tags only in "
                                "presets.tags)")
            if "autoscale" not in spec:
                problems.append(f"{place}: use autoscale (min_workers/max_workers)")
            if "policy_id" not in spec:
                problems.append(f"{place}: set policy_id (the policy_id variable)")


def check_single_writer(bundle: Bundle, merged: dict[str, Any], target: str, problems: list[str]) -> None:
    """Jobs that write the same tables never overlap.  A job's runs are serialised by
    ``max_concurrent_runs: 1`` with ``queue.enabled`` (a second trigger waits instead of being
    skipped or running beside the first).  Databricks has no lock across jobs, so each notebook (a
    stage, which writes its own tables) belongs to exactly one job; another job that needs it starts
    that job with ``run_job_task`` and so waits in the owner's queue."""
    presets_limit = (merged.get("presets") or {}).get("jobs_max_concurrent_runs")
    if presets_limit not in (None, 1):
        problems.append(f"databricks.yml: presets.jobs_max_concurrent_runs: {presets_limit!r} in target {target} "
                        "lets runs of a job overlap; set it to 1 or remove it")
    owners: dict[str, str] = {}
    for key, job in ((merged.get("resources") or {}).get("jobs") or {}).items():
        origin = bundle.origins.get(("jobs", key), bundle.root / "databricks.yml")
        where = f"{bundle.rel(origin)}: resources.jobs.{key}"
        if job.get("max_concurrent_runs") != 1:
            problems.append(f"{where}.max_concurrent_runs: {job.get('max_concurrent_runs')!r} in target {target}; "
                            "set it to 1 (one writer at a time: overlapping runs duplicate appended rows)")
        if (job.get("queue") or {}).get("enabled") is not True:
            problems.append(f"{where}.queue.enabled: set it to true so a run triggered while another is active "
                            "waits instead of being skipped")
        for path, task in _tasks(job):
            notebook = (task.get("notebook_task") or {}).get("notebook_path")
            if not notebook:
                continue
            notebook_file = str((origin.parent / str(notebook)).resolve()) if not str(notebook).startswith("/") \
                else str(notebook)
            owner = owners.setdefault(notebook_file, key)
            if owner != key:
                problems.append(f"{where}.{path}({task.get('task_key')}).notebook_task: {notebook!r} also runs in "
                                f"job {owner!r}, so two jobs could write its tables at once; keep it in {owner!r} "
                                "and start that job with a run_job_task whose job_id is "
                                + "${resources.jobs." + owner + ".id}")


def _principal(entry: dict[str, Any]) -> str:
    for name in PRINCIPAL_FIELDS:
        if entry.get(name):
            return str(entry[name])
    return str(entry.get("principal", ""))


def _access_entries(merged: dict[str, Any], bundle: Bundle) -> Iterator[tuple[str, str, str, list[str]]]:
    """(where, kind, principal, rights) for every permission and grant of the resolved target;
    kind is "permission" (a level such as CAN_MANAGE) or "grant" (Unity Catalog privileges)."""
    for i, entry in enumerate(merged.get("permissions") or []):
        if isinstance(entry, dict):
            yield f"databricks.yml: permissions[{i}]", "permission", _principal(entry), [str(entry.get("level"))]
    for rtype, items in (merged.get("resources") or {}).items():
        for rkey, spec in (items or {}).items():
            if not isinstance(spec, dict):
                continue
            origin = bundle.rel(bundle.origins.get((rtype, rkey), bundle.root / "databricks.yml"))
            for i, entry in enumerate(spec.get("permissions") or []):
                if isinstance(entry, dict):
                    yield (f"{origin}: resources.{rtype}.{rkey}.permissions[{i}]", "permission", _principal(entry),
                           [str(entry.get("level"))])
            for i, entry in enumerate(spec.get("grants") or []):
                if isinstance(entry, dict):
                    yield (f"{origin}: resources.{rtype}.{rkey}.grants[{i}]", "grant", _principal(entry),
                           [str(p) for p in entry.get("privileges") or []])


def check_least_privilege(bundle: Bundle, merged: dict[str, Any], target: str, problems: list[str]) -> None:
    """Production targets: everyone (``users``, ``account users``) and reader groups (the
    ``readers_group`` variable, or any group whose name says reader) get read rights only, and only
    the ``mlops_group`` may tag the registered model or move its aliases."""
    if merged.get("mode") != "production":
        return
    variables = bundle.variables.get(target, {})
    readers = str(variables.get("readers_group", "")).strip().lower()
    mlops = str(variables.get("mlops_group", "")).strip()
    for where, kind, principal, rights in _access_entries(merged, bundle):
        name = principal.strip().lower()
        is_broad, is_reader = name in BROAD_PRINCIPALS, bool(name) and (name == readers or "reader" in name)
        if is_broad or is_reader:
            allowed = READ_LEVELS if kind == "permission" else READ_PRIVILEGES
            who = "everyone" if is_broad else "a reader group"
            for right in rights:
                if right not in allowed:
                    problems.append(f"{where}: target {target}: {principal!r} ({who}) has {right}, a write or manage "
                                    f"right, in a production target. Fix: give it only {', '.join(sorted(allowed))} "
                                    "and grant writes to a named engineering group")
        if kind == "grant" and ".registered_models." in where and mlops and principal.strip() != mlops:
            for right in rights:
                if right in MODEL_CONTROL_PRIVILEGES:
                    problems.append(f"{where}: target {target}: {principal!r} has {right} on the registered model, "
                                    f"which lets it tag versions or move @champion. Fix: leave {right} to the "
                                    f"MLOps group {mlops!r} (variable mlops_group) and grant {principal!r} EXECUTE")


# Dashboards and alerts may read these system tables besides the project's own (a name ending in ".*"
# allows the whole schema). Documented at https://docs.databricks.com/admin/system-tables/ (billing,
# jobs); viewers need SELECT on them, which account admins grant.
SYSTEM_TABLES = ("system.billing.usage", "system.billing.list_prices", "system.lakeflow.*")
# Written by a Lakehouse Monitoring quality monitor next to its table (resources/monitoring.yml).
MONITOR_SUFFIXES = ("_profile_metrics", "_drift_metrics")
# The AI gateway of the serving endpoint (stages/deploy_serving.py) logs to <model>_serving_payload.
SERVING_PAYLOAD_SUFFIX = "_serving_payload"
# Job events that reach the notification destinations (besides e-mail): failures and health-rule breaches.
WEBHOOK_EVENTS = ("on_failure", "on_duration_warning_threshold_exceeded")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A SQL warehouse id: the last part of its HTTP path /sql/1.0/warehouses/<id>.
WAREHOUSE_ID = re.compile(r"[0-9a-f]{16}")
CATALOG_REF, PROJECT_SCHEMA_REF = "${var.catalog}", "${resources.schemas.project_schema.name}"
SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
SQL_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# FROM inside these functions is not a table: EXTRACT(HOUR FROM ts), TRIM(BOTH ' ' FROM s), ...
FROM_IN_FUNCTION = re.compile(r"\b(EXTRACT|TRIM|SUBSTRING|OVERLAY)\s*\(([^()]*?)\bFROM\b", re.I)
SQL_IDENT = r"(?:`[^`]+`|[A-Za-z_][\w$]*)"
TABLE_AFTER = re.compile(rf"\b(?:FROM|JOIN)\s+({SQL_IDENT}(?:\s*\.\s*{SQL_IDENT})*)(\s*\()?", re.I)
CTE_NAME = re.compile(rf"(?:\bWITH(?:\s+RECURSIVE)?|,)\s*({SQL_IDENT})\s+AS\s*\(", re.I)
QUERY_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
DASHBOARD_SUFFIX = ".lvdash.json"


def _sql_code(query: str) -> tuple[str, dict[str, str]]:
    """The query without comments and string literals, ``${...}`` references replaced by
    placeholders (returned with what they stand for), so keywords inside text are not read."""
    refs: dict[str, str] = {}

    def hide(match: re.Match[str]) -> str:
        key = f"__ref{len(refs)}__"
        refs[key] = match.group(0)
        return key

    code = REFERENCE.sub(hide, query)
    code = SQL_STRING.sub("''", SQL_COMMENT.sub(" ", code))
    return FROM_IN_FUNCTION.sub(lambda m: f"{m.group(1)}({m.group(2)},", code), refs


def tables_read(query: str) -> list[str]:
    """Every table a SQL query reads (after FROM or JOIN), dotted, without backticks; common table
    expressions, subqueries and table functions are not tables."""
    code, refs = _sql_code(query)
    ctes = {m.group(1).strip("`").lower() for m in CTE_NAME.finditer(code)}
    found = []
    for match in TABLE_AFTER.finditer(code):
        if match.group(2):  # a table function such as range(10)
            continue
        parts = [part.strip().strip("`") for part in re.split(rf"\s*\.\s*(?={SQL_IDENT})", match.group(1))]
        name = ".".join(refs.get(part, part) for part in parts)
        if not (len(parts) == 1 and name.lower() in ctes) and name not in found:
            found.append(name)
    return found


def query_parameters(query: str) -> set[str]:
    """The ``:name`` parameter markers of a dashboard query."""
    return set(QUERY_PARAMETER.findall(_sql_code(query)[0]))


def project_tables(root: Path, problems: list[str]) -> dict[str, str]:
    """Tables the pipeline writes, each with where its name is declared: names.py (``*_TABLE``) and
    each contract's medallion tables (conf/contracts)."""
    written = {str(value): "names.py" for key, value in vars(names).items()
               if key.endswith("_TABLE") and isinstance(value, str) and value not in names.LOCAL_ONLY_TABLES}
    try:
        contracts = load_contracts(root)
    except (ConfigError, OSError) as exc:
        problems.append(f"conf/contracts: cannot read the contracts, so dashboard and alert queries are checked "
                        f"against names.py only: {exc}".replace("\n", " "))
        return written
    for contract in contracts.values():
        where = f"conf/contracts ({contract.name})"
        for table in (contract.bronze_table, contract.silver_table, contract.staging_table,
                      contract.quarantine_table, contract.gold_table):
            written[table] = where
        # data/features.feature_spec names the feature table (not imported here: it needs Spark).
        written[f"features_{contract.gold.table}"] = where
    return written


def _serving_configured(root: Path) -> bool:
    """Whether conf/project.yml configures real-time serving: only then does the endpoint's
    inference table exist for dashboards to read."""
    try:
        return load_project(root).serving is not None
    except (ConfigError, OSError):
        return False


def target_tables(bundle: Bundle, merged: dict[str, Any], target: str) -> dict[str, str]:
    """The project's tables in one target: the pipeline's, the quality monitors' outputs and, with
    real-time serving configured, the endpoint's inference table (named after ``var.model_name``)."""
    written = dict(bundle.written)
    for key, monitor in ((merged.get("resources") or {}).get("quality_monitors") or {}).items():
        table = str((monitor or {}).get("table_name", "")).rsplit(".", 1)[-1]
        for suffix in MONITOR_SUFFIXES:
            written[table + suffix] = f"resources.quality_monitors.{key}"
    model = bundle.variables.get(target, {}).get("model_name")
    if bundle.serving and isinstance(model, str):
        written[model + SERVING_PAYLOAD_SUFFIX] = "the serving endpoint's AI gateway (stages/deploy_serving.py)"
    return written


def is_documented_system_table(name: str) -> bool:
    """Whether ``name`` is on the SYSTEM_TABLES allow-list (``system.<schema>.*`` allows the schema)."""
    lowered = name.lower()
    return any(lowered == allowed or (allowed.endswith(".*") and lowered.startswith(allowed[:-1])
                                      and lowered.count(".") == 2) for allowed in SYSTEM_TABLES)


def _unknown_table_fix(name: str, written: dict[str, str]) -> str:
    monitor = next((s for s in MONITOR_SUFFIXES if name.lower().endswith(s)), None)
    if monitor:
        return ("a quality monitor writes it: keep resources/monitoring.yml (include_monitoring), or read the "
                f"project's own {names.DRIFT_TABLE} instead")
    if name.lower().endswith(SERVING_PAYLOAD_SUFFIX):
        return ("the serving endpoint writes <model_name>" + SERVING_PAYLOAD_SUFFIX + "; name it after the "
                "target's model_name variable, and configure serving in conf/project.yml")
    return ("correct the name, or have a stage write the table and declare its name in names.py "
            f"(known: {', '.join(sorted(written))})")


def table_problems(query: str, written: dict[str, str], *, bare_allowed: bool, qualified_as: set[str]) -> list[str]:
    """What is wrong with the tables a query reads: each is a project table (bare when the resource
    sets the default catalog and schema, else qualified as one of ``qualified_as`` + ``.table``) or a
    documented system table."""
    found = []
    known = {t.lower() for t in written}
    for name in tables_read(query):
        parts = name.split(".")
        if parts[0].lower() == "system":
            if not is_documented_system_table(name):
                found.append(f"reads {name!r}, which is not a documented system table this project may read. "
                             f"Fix: use one of {', '.join(SYSTEM_TABLES)}, or add it to SYSTEM_TABLES in "
                             "tools/bundle_check.py with a reason")
            continue
        table, prefix = parts[-1], ".".join(parts[:-1])
        if len(parts) == 1 and not bare_allowed:
            found.append(f"reads {name!r} without catalog and schema. Fix: write "
                         f"{CATALOG_REF}.{PROJECT_SCHEMA_REF}.{name}")
        elif len(parts) > 1 and prefix not in qualified_as:
            fix = (f"write the bare name {table!r}: the dashboard's dataset_catalog and dataset_schema pick "
                   "each target's catalog and schema" if bare_allowed else
                   f"write {CATALOG_REF}.{PROJECT_SCHEMA_REF}.{table}, the schema of this target")
            found.append(f"reads {name!r}, outside the project's schema. Fix: {fix}")
        elif table.lower() not in known:
            found.append(f"reads {table!r}, which this project does not write. Fix: "
                         f"{_unknown_table_fix(table, written)}")
    return found


def _var_name(value: Any) -> str | None:
    """``x`` when ``value`` is exactly ``${var.x}``."""
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match.group(1)[4:] if match and match.group(1).startswith("var.") else None


def _effective_spec(config: dict[str, Any], target: str, name: str) -> Any:
    """What a target gives a variable: its override, else the declaration."""
    override = (((config.get("targets") or {}).get(target) or {}).get("variables") or {})
    if name in override:
        return override[name]
    return (config.get("variables") or {}).get(name)


def check_warehouse(bundle: Bundle, where: str, raw: Any, value: Any, target: str, problems: list[str]) -> None:
    """A warehouse is found by name (``lookup: {warehouse: <name>}``) or given by id (16 hex digits);
    anything else fails only at deploy time."""
    var = _var_name(raw)
    fix = ("Fix: set the warehouse_id variable (targets." + target + ".variables.warehouse_id) to the id, the last "
           "part of the warehouse's HTTP path /sql/1.0/warehouses/<id>, or to lookup: {warehouse: <its name>}")
    if isinstance(value, str) and value.startswith("<lookup:"):
        spec = _effective_spec(bundle.config, target, var or "")
        lookup = spec.get("lookup") if isinstance(spec, dict) else None
        if not (isinstance(lookup, dict) and set(lookup) == {"warehouse"} and str(lookup["warehouse"]).strip()):
            problems.append(f"{where}.warehouse_id: variable {var!r} in target {target} looks up {lookup!r}, not a "
                            f"SQL warehouse by name. {fix}")
        return
    if not (isinstance(value, str) and WAREHOUSE_ID.fullmatch(value)):
        named = f" (variable {var!r})" if var else ""
        problems.append(f"{where}.warehouse_id: {value!r}{named} in target {target} is not a SQL warehouse id. {fix}")


def warehouse_resources(bundle: Bundle, merged: dict[str, Any], raw: dict[str, Any], kind: str, target: str,
                        problems: list[str]) -> Iterator[tuple[str, Path, str, dict[str, Any]]]:
    """Each resource of ``kind`` (dashboards, alerts) that runs on a SQL warehouse, as (its key, the file
    declaring it, where that is, its merged spec), its ``warehouse_id`` checked on the way."""
    raw_items = (raw.get("resources") or {}).get(kind) or {}
    for key, spec in ((merged.get("resources") or {}).get(kind) or {}).items():
        if not isinstance(spec, dict):
            continue
        origin = bundle.origins.get((kind, key), bundle.root / "databricks.yml")
        where = f"{bundle.rel(origin)}: resources.{kind}.{key}"
        check_warehouse(bundle, where, (raw_items.get(key) or {}).get("warehouse_id"), spec.get("warehouse_id"),
                        target, problems)
        yield key, origin, where, spec


def check_dashboards(bundle: Bundle, merged: dict[str, Any], raw: dict[str, Any], target: str,
                     problems: list[str]) -> None:
    """Each dashboard's file exists and is a dashboard, and its queries read only the project's
    tables (bare names: ``dataset_catalog``/``dataset_schema`` pick the target's schema, since the CLI
    does not substitute ``${...}`` inside the file) or documented system tables."""
    written = target_tables(bundle, merged, target)
    for key, origin, where, spec in warehouse_resources(bundle, merged, raw, "dashboards", target, problems):
        file_path = spec.get("file_path")
        if not file_path:
            problems.append(f"{where}.file_path: missing. Fix: point it at the dashboard's {DASHBOARD_SUFFIX} file, "
                            "relative to this YAML file")
            continue
        path = origin.parent / str(file_path)
        if not str(file_path).endswith(DASHBOARD_SUFFIX) or not path.is_file():
            problems.append(f"{where}.file_path: {file_path!r} is not an existing {DASHBOARD_SUFFIX} file (relative "
                            f"to {bundle.rel(origin)}). Fix: correct the path or export the dashboard there")
            continue
        scoped = bool(spec.get("dataset_catalog")) and bool(spec.get("dataset_schema"))
        for line in dashboard_problems(path.read_text(encoding="utf-8"), written, scoped=scoped):
            problems.append(f"{bundle.rel(path)} (resources.dashboards.{key}): {line}")


def dashboard_problems(text: str, written: dict[str, str], scoped: bool = True) -> list[str]:
    """What is wrong with one ``.lvdash.json`` file: its structure (datasets with a name and a
    query, declared ``:parameters``; pages whose widgets have a spec and query existing datasets and
    fields) and the tables its queries read."""
    try:
        board = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc}. Fix: export the dashboard again (File > Export) or repair the JSON"]
    if not isinstance(board, dict) or not isinstance(board.get("datasets"), list) \
            or not isinstance(board.get("pages"), list) or not board["pages"]:
        return ["not a dashboard: the top level needs 'datasets' (a list) and 'pages' (a non-empty list). "
                "Fix: export the dashboard again (File > Export)"]
    found: list[str] = []
    datasets: dict[str, dict[str, Any]] = {}
    for i, dataset in enumerate(board["datasets"]):
        name = dataset.get("name") if isinstance(dataset, dict) else None
        if not isinstance(name, str) or not name:
            found.append(f"datasets[{i}]: needs a 'name'. Fix: give it a short unique name")
            continue
        label = f"dataset {name!r}"
        if name in datasets:
            found.append(f"{label}: the name is used twice. Fix: rename one")
        datasets[name] = dataset
        lines = dataset.get("queryLines")
        query = "".join(lines) if isinstance(lines, list) else dataset.get("query")
        if not isinstance(query, str) or not query.strip():
            found.append(f"{label}: no query. Fix: give it 'queryLines' (a list of lines, each ending in \\n)")
            continue
        declared = {p.get("keyword") for p in dataset.get("parameters") or [] if isinstance(p, dict)}
        for missing in sorted(query_parameters(query) - declared):
            found.append(f"{label}: the query uses :{missing}, which its 'parameters' do not declare. Fix: add "
                         f"a parameter with keyword {missing!r} and a defaultSelection")
        for problem in table_problems(query, written, bare_allowed=scoped, qualified_as=set()):
            found.append(f"{label}: {problem}")
        if not scoped and any("." not in t for t in tables_read(query)):
            found.append(f"{label}: reads tables by bare name but the dashboard resource sets no dataset_catalog "
                         f"and dataset_schema. Fix: set dataset_catalog: {CATALOG_REF} and dataset_schema: "
                         f"{PROJECT_SCHEMA_REF}")
    widgets: set[str] = set()
    for p, page in enumerate(board["pages"]):
        if not isinstance(page, dict) or not isinstance(page.get("layout"), list):
            found.append(f"pages[{p}]: needs a 'layout' list. Fix: export the dashboard again")
            continue
        for w, item in enumerate(page["layout"]):
            found.extend(_widget_problems(item, f"pages[{p}].layout[{w}]", datasets, widgets))
    return found


def _widget_problems(item: Any, place: str, datasets: dict[str, dict[str, Any]], seen: set[str]) -> list[str]:
    widget = item.get("widget") if isinstance(item, dict) else None
    position = item.get("position") if isinstance(item, dict) else None
    if not isinstance(widget, dict) or not isinstance(position, dict):
        return [f"{place}: needs a 'widget' and a 'position'. Fix: export the dashboard again"]
    name = widget.get("name")
    found = []
    where = f"{place} (widget {name!r})"
    if name in seen:
        found.append(f"{where}: the widget name is used twice. Fix: rename one")
    seen.add(name)
    if not all(isinstance(position.get(k), int) for k in ("x", "y", "width", "height")):
        found.append(f"{where}.position: needs integer x, y, width and height")
    if "textbox_spec" in widget or "multilineTextboxSpec" in widget:
        return found
    spec = widget.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("widgetType"), str) \
            or not isinstance(spec.get("version"), int):
        return [*found, f"{where}.spec: needs 'widgetType' and an integer 'version'. Fix: export the dashboard again"]
    fields: set[str] = set()
    before = len(found)
    for q, query in enumerate(widget.get("queries") or []):
        body = query.get("query") if isinstance(query, dict) else None
        dataset = body.get("datasetName") if isinstance(body, dict) else None
        if dataset not in datasets:
            found.append(f"{where}.queries[{q}].query.datasetName: {dataset!r} is not a dataset of this dashboard "
                         f"(have {', '.join(sorted(datasets)) or 'none'}). Fix: name one of them")
            continue
        text = "".join(datasets[dataset].get("queryLines") or []) or str(datasets[dataset].get("query", ""))
        selects_all = re.search(r"(^|[\s,.])\*(\s|,|$)", _sql_code(text)[0]) is not None
        for field_spec in body.get("fields") or []:
            fields.add(str(field_spec.get("name")))
            for column in re.findall(r"`([^`]+)`", str(field_spec.get("expression", ""))):
                if column != "*" and not selects_all and not re.search(rf"\b{re.escape(column)}\b", text):
                    found.append(f"{where}: field {field_spec.get('name')!r} reads column {column!r}, which dataset "
                                 f"{dataset!r} does not select. Fix: select it in the query or correct the name")
    for used in _field_names(spec.get("encodings")) if len(found) == before else ():
        if used not in fields:
            found.append(f"{where}.spec.encodings: fieldName {used!r} is not a field of the widget's queries "
                         f"(have {', '.join(sorted(fields)) or 'none'}). Fix: add it to the query's fields")
    return found


def _field_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "fieldName" and isinstance(value, str):
                yield value
            else:
                yield from _field_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _field_names(value)


def check_alerts(bundle: Bundle, merged: dict[str, Any], raw: dict[str, Any], target: str,
                 problems: list[str]) -> None:
    """Each SQL alert reads the project's tables in this target's schema (an alert has no default
    catalog or schema, so its query names ``${var.catalog}.${resources.schemas.project_schema.name}``)
    or documented system tables, and evaluates a column its query returns."""
    written = target_tables(bundle, merged, target)
    variables = bundle.variables.get(target, {})
    qualified = {f"{variables.get('catalog')}.{PROJECT_SCHEMA_REF}", f"{variables.get('catalog')}.{variables.get('schema')}"}
    for _, _, where, spec in warehouse_resources(bundle, merged, raw, "alerts", target, problems):
        query = spec.get("query_text")
        if not isinstance(query, str):
            continue
        for problem in table_problems(query, written, bare_allowed=False, qualified_as=qualified):
            problems.append(f"{where}.query_text: {problem}")
        column = ((spec.get("evaluation") or {}).get("source") or {}).get("name")
        if isinstance(column, str) and not _returns_column(query, column):
            problems.append(f"{where}.evaluation.source.name: {column!r} is not a column of query_text. Fix: "
                            f"return it from the query (... AS {column})")


def _returns_column(query: str, column: str) -> bool:
    """Whether a query returns ``column``: an alias (``... AS column``) or a plain selected column."""
    name = rf"`?{re.escape(column)}`?"
    pattern = rf"(\bAS\s+{name}|(\bSELECT(\s+DISTINCT)?|,)\s*(\w+\.)?{name}\s*(,|\bFROM\b|$))"
    return re.search(pattern, _sql_code(query)[0], re.I) is not None


def _destination_problems(items: Any, id_key: str, source: str, target: str) -> list[str]:
    """What is wrong with a list of notification destinations (``{id_key: <uuid>}``) or alert
    subscriptions (``user_email`` or ``destination_id``); ``source`` names where the list is set."""
    shape = "a list of {" + id_key + ": <destination UUID>}" + (" or {user_email: <address>}" if id_key != "id" else "")
    fix = (f"Fix: copy each id from Settings > Notifications > Notification destinations (or `databricks "
           f"notification-destinations list`) into {source}, as {shape}; [] sends none")
    if not isinstance(items, list):
        return [f"{items!r} is not {shape}. {fix}"]
    found = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            found.append(f"[{i}]: {item!r} is not a mapping. {fix}")
        elif id_key in item:
            if not (isinstance(item[id_key], str) and UUID.fullmatch(item[id_key])):
                found.append(f"[{i}].{id_key}: {item[id_key]!r} is not a notification destination id (a UUID such as "
                             f"00000000-0000-0000-0000-000000000000). {fix}")
        elif id_key != "id" and isinstance(item.get("user_email"), str):
            if "@" not in item["user_email"]:
                found.append(f"[{i}].user_email: {item['user_email']!r} is not an e-mail address. {fix}")
        else:
            found.append(f"[{i}]: {item!r} names no {id_key}. {fix}")
    return found


def check_notifications(bundle: Bundle, merged: dict[str, Any], raw: dict[str, Any], target: str,
                        problems: list[str]) -> None:
    """Every job sends failures and duration breaches to webhook destinations, and job webhook
    notifications and alert subscriptions name destinations by UUID. A list set through a variable is
    reported once, against the variable and this target."""
    resources = merged.get("resources") or {}
    raw_resources = raw.get("resources") or {}
    places: list[tuple[str, Any, Any, str]] = []
    for key, job in (resources.get("jobs") or {}).items():
        raw_hooks = (((raw_resources.get("jobs") or {}).get(key) or {}).get("webhook_notifications") or {})
        origin = bundle.rel(bundle.origins.get(("jobs", key), bundle.root / "databricks.yml"))
        missing = [e for e in WEBHOOK_EVENTS if e not in ((job or {}).get("webhook_notifications") or {})]
        if missing:
            problems.append(f"{origin}: resources.jobs.{key}.webhook_notifications: no {' or '.join(missing)}, so "
                            "the target's notification destinations never hear of it. Fix: set each to "
                            "${var.notification_destinations}")
        for event, items in ((job or {}).get("webhook_notifications") or {}).items():
            places.append((f"{origin}: resources.jobs.{key}.webhook_notifications.{event}", raw_hooks.get(event),
                           items, "id"))
    for key, alert in (resources.get("alerts") or {}).items():
        raw_alert = (raw_resources.get("alerts") or {}).get(key) or {}
        raw_subs = ((raw_alert.get("evaluation") or {}).get("notification") or {}).get("subscriptions")
        subs = (((alert or {}).get("evaluation") or {}).get("notification") or {}).get("subscriptions")
        if subs is not None:
            origin = bundle.rel(bundle.origins.get(("alerts", key), bundle.root / "databricks.yml"))
            places.append((f"{origin}: resources.alerts.{key}.evaluation.notification.subscriptions", raw_subs, subs,
                           "destination_id"))
    for where, raw_items, items, id_key in places:
        var = _var_name(raw_items)
        if var:
            where, source = f"databricks.yml: variables.{var} (target {target})", f"targets.{target}.variables.{var}"
        else:
            source = where.split(": ", 1)[1]
        problems.extend(f"{where}: {line}" for line in _destination_problems(items, id_key, source, target))


def check_variable_types(config: dict[str, Any], problems: list[str]) -> None:
    """A variable holding a list or mapping must say ``type: complex``: the CLI rejects it otherwise."""
    declared = config.get("variables") or {}
    for name, spec in declared.items():
        values = [("default", spec.get("default"))] if isinstance(spec, dict) else []
        for target, tspec in (config.get("targets") or {}).items():
            override = ((tspec or {}).get("variables") or {}).get(name)
            if override is not None and not (isinstance(override, dict) and "lookup" in override):
                values.append((f"targets.{target}", override))
        complex_type = isinstance(spec, dict) and spec.get("type") == "complex"
        for place, value in values:
            if isinstance(value, list | dict) and not complex_type and place == "default":
                problems.append(f"databricks.yml: variables.{name}: the default is a "
                                f"{'list' if isinstance(value, list) else 'mapping'}. Fix: add type: complex")
            if isinstance(value, list) and not complex_type and place != "default":
                problems.append(f"databricks.yml: {place}.variables.{name}: a list for a variable that is not "
                                "type: complex. Fix: add type: complex to its declaration")


def parse_vars(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var {pair!r}: use --var name=value")
        values[name] = value
    return values


def main(root: Path, targets: list[str] | None, var_pairs: list[str]) -> int:
    problems, checked = check(root, targets, parse_vars(var_pairs))
    for line in problems:
        print(line)
    print(f"checked targets: {', '.join(checked) or 'none'}", file=sys.stderr)
    for item in NOT_CHECKED_OFFLINE:
        print(f"not checked offline: {item}", file=sys.stderr)
    if problems:
        print(f"bundle-check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("bundle-check: OK", file=sys.stderr)
    return 0
