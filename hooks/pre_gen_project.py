"""Validate every answer before cookiecutter writes a single project file.

Runs for interactive prompts, ``--no-input``, ``extra_context`` and config files alike,
because cookiecutter renders this file with the final context.  Each problem is printed
as one line naming the field, the bad value and the fix; any problem exits non-zero,
and cookiecutter then deletes the half-made project directory.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path

CONTEXT: dict[str, object] = json.loads({{ cookiecutter | jsonify | tojson }})
# The answers as given, before cookiecutter rendered them as Jinja: an answer such as a Jinja expression
# reaches CONTEXT already evaluated, so template syntax is looked for here.
RAW: dict[str, object] = json.loads({{ (_cookiecutter if _cookiecutter is defined else {}) | jsonify | tojson }})

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HOST = re.compile(r"^https://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
TAG_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:=+@-]*$")
# cookiecutter.json's project_slug when project_name has no letters or digits: a folder name that
# always renders (an empty one would be the output folder itself), reported as project_name's problem.
UNNAMED = "_unnamed_"
UNSAFE_TEXT = re.compile(r'["\\\n\r\t]|\{\{|\{\%|\$\{')
TEMPLATE_SYNTAX = re.compile(r"\{[#%{]")  # (written so that Jinja does not read this file's own text)
OPEN = "{"
# Group display names: letters (accents too), digits, spaces and _ . - @ + & ( ); no quotes,
# braces, brackets, '#', ':' or '$' that YAML, bundle interpolation or CI expressions would read.
GROUP = re.compile(r"^[^\W_](?:[\w.@+&()-]| (?! ))*$")
# Characters that would end a quoted literal or start an expansion in a CI expression or shell,
# or that GitHub/Azure branch filters read as patterns.
BRANCH_UNSAFE = re.compile(r"[\"'`$!+{}#,]")

CLOUD_DOMAINS = {
    "azure": ".azuredatabricks.net",
    "aws": ".cloud.databricks.com",
    "gcp": ".gcp.databricks.com",
}
# Names that would shadow the standard library or a dependency of the generated project.
RESERVED_PACKAGES = {
    "src", "test", "tests", "conf", "notebooks", "resources", "databricks", "mlflow",
    "pyspark", "pysail", "delta", "deltalake", "lightgbm", "great_expectations", "pandas",
    "numpy", "pyarrow", "sklearn", "yaml", "nox", "pytest", "setuptools",
    *sys.stdlib_module_names,
}

Check = Callable[[str], "str | None"]


def text(max_len: int) -> Check:
    def check(value: str) -> str | None:
        if not value.strip():
            return "is empty. Fix: give a non-empty value"
        if len(value) > max_len:
            return f"is longer than {max_len} characters. Fix: shorten it"
        if value != value.strip():
            return "has leading or trailing spaces. Fix: remove them"
        if UNSAFE_TEXT.search(value):
            return "contains a quote, backslash, tab, newline or template braces. Fix: use plain words"
        return invisible(value)

    return check


def invisible(value: str) -> str | None:
    """Control, format (bidi overrides, zero-width) and line/paragraph separator characters."""
    import unicodedata

    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs"):
            return f"contains the invisible or control character U+{ord(char):04X}. Fix: remove it"
    return None


def group(value: str) -> str | None:
    if not value.strip():
        return "is empty. Fix: give the group's display name"
    if value != value.strip():
        return "has leading or trailing spaces. Fix: remove them"
    if len(value) > 255:
        return "is longer than 255 characters. Fix: use the group's display name"
    if not GROUP.match(value):
        return ("is not a plain group name. Fix: use the workspace group's display name with letters, "
                "digits, single spaces and _ . - @ + & ( ) only (no quotes, braces, brackets, # : $ or newlines)")
    return None


def slug(value: str) -> str | None:
    if not SLUG.match(value) or len(value) > 60:
        return ("is not a valid distribution/bundle name. Fix: use lowercase letters, digits and "
                "single hyphens, starting with a letter, at most 60 characters (e.g. customer-churn)")
    return None


def package(value: str) -> str | None:
    if not IDENTIFIER.match(value) or value.startswith("_"):
        return ("is not a valid Python package name. Fix: use lowercase letters, digits and "
                "underscores, starting with a letter (e.g. customer_churn)")
    if keyword.iskeyword(value) or value in RESERVED_PACKAGES:
        return "would shadow a Python keyword, the standard library or a dependency. Fix: choose a more specific name"
    return None


def email(value: str) -> str | None:
    return None if EMAIL.match(value) else "is not an e-mail address. Fix: use name@domain.tld"


def uuid(value: str) -> str | None:
    if not UUID.match(value):
        return ("is not a service-principal application id. Fix: copy the lowercase UUID "
                "(8-4-4-4-12 hex digits) from the account console")
    return None


def host(value: str) -> str | None:
    if not value.startswith("https://"):
        return "is not an https:// URL. Fix: use the workspace URL, e.g. https://adb-123.4.azuredatabricks.net"
    if not HOST.match(value):
        return ("has a path, query, port, upper-case letters or a trailing slash. "
                "Fix: keep only https://<workspace-host>")
    return None


def uc_identifier(value: str) -> str | None:
    if not IDENTIFIER.match(value) or len(value) > 255:
        return ("is not a valid Unity Catalog name. Fix: use lowercase letters, digits and "
                "underscores, starting with a letter or underscore (no hyphens, dots or spaces)")
    return None


def git_branch(value: str) -> str | None:
    """git check-ref-format --branch rules, plus characters that could change a CI expression."""
    fix = "Fix: use e.g. main or release/v1"
    if not value:
        return f"is not a valid git branch name: it is empty. {fix}"
    if re.search(r"[\x00-\x20\x7f]", value):
        return f"is not a valid git branch name: it contains a space or control character, which git refuses in branch names. {fix}"
    if re.search(r"[~^:?*\[\\]", value):
        return f"is not a valid git branch name: it contains one of ~ ^ : ? * [ \\, which git refuses in branch names. {fix}"
    if ".." in value or "@{" in value or value == "@" or "//" in value:
        return f"is not a valid git branch name: it contains '..', '@{OPEN}', '//' or is '@', which git refuses in branch names. {fix}"
    if value.startswith(("-", "/")) or value.endswith(("/", ".")) or value == "HEAD":
        return f"is not a valid git branch name: it starts with - or /, ends with / or ., or is HEAD, which git refuses for branches. {fix}"
    if any(part.startswith(".") or part.endswith(".lock") for part in value.split("/")):
        return f"is not a valid git branch name: it has a path component starting with '.' or ending in '.lock', which git refuses. {fix}"
    if BRANCH_UNSAFE.search(value):
        return ("is not a valid git branch name: it contains a quote, $, backtick, braces, # , ! or +, which could end a quoted literal in a CI "
                f"expression or act as a branch-filter pattern. {fix}")
    return invisible(value)


def tag_value(value: str) -> str | None:
    if not TAG_VALUE.match(value) or len(value) > 256:
        return "is not a valid cost tag value. Fix: use letters, digits, spaces and _ . : = + @ - only"
    return None


def choice(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        if value not in allowed:
            return f"is not one of {', '.join(allowed)}. Fix: pick one of them"
        return None

    return check


RULES: dict[str, Check] = {
    "project_name": text(100),
    "project_slug": slug,
    "package_name": package,
    "description": text(300),
    "author_name": text(100),
    "author_email": email,
    "cloud": choice("azure", "aws", "gcp"),
    "cicd_platform": choice("github_actions", "azure_devops", "both", "none"),
    "default_branch": git_branch,
    "release_branch": git_branch,
    "dev_workspace_host": host,
    "staging_workspace_host": host,
    "prod_workspace_host": host,
    "dev_catalog": uc_identifier,
    "staging_catalog": uc_identifier,
    "prod_catalog": uc_identifier,
    "schema_name": uc_identifier,
    "compute": choice("serverless", "job_clusters"),
    "problem_type": choice("classification", "regression"),
    "include_feature_store": choice("yes", "no"),
    "include_monitoring": choice("yes", "no"),
    "include_serving": choice("yes", "no"),
    "readers_group": group,
    "data_scientists_group": group,
    "ml_engineers_group": group,
    "mlops_group": group,
    "staging_service_principal": uuid,
    "prod_service_principal": uuid,
    "cost_center": tag_value,
    "owner_email": email,
    "python_version": choice("3.11", "3.12"),
}


# Defaults computed from another answer: when the source answer is bad, only the source is
# reported, not every value derived from it.
DERIVED: dict[str, tuple[str, Callable[[str], str]]] = {
    "package_name": ("project_slug", lambda slug: slug.replace("-", "_")),
    "schema_name": ("package_name", lambda package: package),
    "owner_email": ("author_email", lambda email: email),
    "staging_workspace_host": ("dev_workspace_host", lambda host: host),
}


def combination_problems(ctx: dict[str, str]) -> list[str]:
    """Rules that involve more than one answer."""
    problems = []
    domain = CLOUD_DOMAINS.get(ctx["cloud"], "")
    for field in ("dev_workspace_host", "staging_workspace_host", "prod_workspace_host"):
        if domain and HOST.match(ctx[field]) and not ctx[field].endswith(domain):
            problems.append(
                f"{field}: {ctx[field]!r} is not a {ctx['cloud']} workspace (cloud={ctx['cloud']}). "
                f"Fix: use a host ending in {domain}, or choose the matching cloud"
            )
    if ctx["default_branch"] == ctx["release_branch"]:
        problems.append(
            f"release_branch: {ctx['release_branch']!r} equals default_branch. "
            "Fix: use a separate release branch (e.g. release) so prod deploys are deliberate"
        )
    if ctx["prod_catalog"] in (ctx["dev_catalog"], ctx["staging_catalog"]):
        problems.append(
            f"prod_catalog: {ctx['prod_catalog']!r} is also the dev or staging catalog. "
            "Fix: give prod its own catalog so dev runs can never write prod tables"
        )
    if ctx["staging_service_principal"] == ctx["prod_service_principal"]:
        problems.append(
            f"prod_service_principal: {ctx['prod_service_principal']!r} is also the staging one. "
            "Fix: use a separate service principal per environment"
        )
    return problems


# Options whose cookiecutter.json default is itself Jinja (derived from another answer).
TEMPLATED_DEFAULTS = {"project_slug", "package_name", "dev_workspace_host", "staging_workspace_host",
                      "prod_workspace_host", "schema_name", "owner_email"}


def declared_defaults() -> dict[str, object] | None:
    """The template's own cookiecutter.json (``_repo_dir`` may be relative to the caller's folder)."""
    import os

    repo = Path(str(CONTEXT.get("_repo_dir", "")))
    for base in (repo, Path(os.environ.get("PWD", ".")) / repo):
        if str(repo) and (base / "cookiecutter.json").is_file():
            return json.loads((base / "cookiecutter.json").read_text(encoding="utf-8"))
    return None


def template_syntax_problems(raw: dict[str, object], defaults: dict[str, object] | None) -> list[str]:
    """Answers given with Jinja syntax: cookiecutter evaluates them before any hook runs."""
    defaults = defaults or {}
    problems = []
    for field in RULES:
        value = raw.get(field)
        if not isinstance(value, str) or not TEMPLATE_SYNTAX.search(value):
            continue
        if value == defaults.get(field, value if field in TEMPLATED_DEFAULTS else None):
            continue  # the template's own derived default
        problems.append(f"{field}: {value!r} contains template syntax ('{OPEN}{OPEN}', '{OPEN}%' or '{OPEN}#'), which "
                        "cookiecutter would run as Jinja. Fix: give plain text")
    return problems


def problems_in(ctx: dict[str, object], raw: dict[str, object] | None = None) -> list[str]:
    problems = template_syntax_problems(raw or {}, declared_defaults() if raw else None)
    if problems:
        return problems
    bad_fields: set[str] = set()
    for field, check in RULES.items():
        value = ctx.get(field)
        if not isinstance(value, str):
            problems.append(f"{field}: {value!r} is missing or not a string. Fix: give a text value")
            bad_fields.add(field)
            continue
        problem = check(value)
        if not problem:
            continue
        bad_fields.add(field)
        if field == "project_slug" and value == UNNAMED:
            if "project_name" not in bad_fields:
                problems.append(f"project_name: {ctx.get('project_name')!r} has no letters or digits to name the "
                                "project folder. Fix: use words, e.g. 'Customer Churn', or set project_slug")
            continue
        source, derive = DERIVED.get(field, ("", str))
        if source in bad_fields and value == derive(str(ctx.get(source))):
            continue  # follows from the bad source answer, which is already reported
        problems.append(f"{field}: {value!r} {problem}")
    if not problems:
        problems.extend(combination_problems({k: str(v) for k, v in ctx.items()}))
    return problems


def main() -> int:
    problems = problems_in(CONTEXT, RAW)
    for line in problems:
        print(f"ERROR {line}", file=sys.stderr)
    if problems:
        print(f"Nothing was generated: {len(problems)} invalid answer(s).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
