"""Render the template from a config file or key=value pairs, rejecting undeclared options.

cookiecutter silently drops ``extra_context`` and ``default_context`` keys that
cookiecutter.json does not declare, so a renamed option would vanish from a team's
config without a word.  This wrapper (and the test harness, which renders through
``render()``) refuses such keys and suggests the nearest declared name.

    python scripts/render.py --config team.yaml -o ~/projects
    python scripts/render.py --set project_name="Demand Forecast" --set problem_type=regression
    python scripts/render.py --config my-project/.cookiecutter.json -o /tmp/rerender

The config may be a cookiecutter user config (``default_context:``), a replay file
(``{"cookiecutter": {...}}``, as written to every generated project's .cookiecutter.json),
or a flat mapping of option to value.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1]


class UnknownOptionError(ValueError):
    """An option name that cookiecutter.json does not declare."""


class TemplateSyntaxInAnswerError(ValueError):
    """An answer containing Jinja syntax, which cookiecutter would evaluate."""


def template_options(template: Path = TEMPLATE) -> dict[str, Any]:
    return json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))


def declared_options(template: Path = TEMPLATE) -> list[str]:
    return [key for key in template_options(template) if not key.startswith("_")]


def check_keys(context: dict[str, Any], source: str, template: Path = TEMPLATE) -> None:
    """Raise naming every undeclared key (private ``_`` keys of replay files are allowed)."""
    declared = declared_options(template)
    unknown = [key for key in context if not key.startswith("_") and key not in declared]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, declared, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UnknownOptionError(
            f"{source}: unknown option(s) {', '.join(hints)}. "
            f"Fix: use only options declared in cookiecutter.json: {', '.join(declared)}"
        )


def check_values(context: dict[str, Any], source: str) -> None:
    """Raise naming every answer with Jinja syntax: cookiecutter would evaluate it as a template
    (``{{ 7*7 }}`` becomes ``49``) before any hook could see it."""
    bad = [key for key, value in context.items()
           if not key.startswith("_") and isinstance(value, str) and re.search(r"\{[{%#]", value)]
    if bad:
        raise TemplateSyntaxInAnswerError(
            f"{source}: answer(s) {', '.join(f'{k}={context[k]!r}' for k in bad)} contain template syntax "
            "('{{', '{%' or '{#'), which cookiecutter would run as Jinja. Fix: give plain text")


def load_config(path: Path) -> dict[str, Any]:
    """Read a user config, replay file or flat mapping into a flat answers mapping."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option to value")
    for wrapper in ("default_context", "cookiecutter"):
        if wrapper in data:
            other = [k for k in data if k != wrapper and k not in ("abbreviations", "cookiecutters_dir",
                                                                   "replay_dir")]
            if other:
                raise ValueError(f"{path}: unexpected top-level key(s) {other} next to {wrapper!r}")
            data = data[wrapper]
            break
    return {k: v for k, v in data.items() if not k.startswith("_")}


def render(context: dict[str, Any], output_dir: Path, template: Path | str = TEMPLATE,
           source: str = "extra_context", overwrite: bool = False) -> Path:
    """Check the keys, then render without prompts; returns the project directory."""
    from cookiecutter.main import cookiecutter

    local = Path(str(template))
    check_keys(context, source, local if (local / "cookiecutter.json").is_file() else TEMPLATE)
    check_values(context, source)
    return Path(cookiecutter(str(template), no_input=True, extra_context=context,
                             output_dir=str(output_dir), overwrite_if_exists=overwrite))


def parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: use --set option=value")
        values[key] = value
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML/JSON config, replay file or flat mapping")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="one answer (repeatable; wins over --config)")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path.cwd())
    parser.add_argument("--template", default=str(TEMPLATE), help="template path or git URL")
    parser.add_argument("--overwrite", action="store_true", help="render over an existing project folder")
    args = parser.parse_args(argv)
    from cookiecutter.exceptions import CookiecutterException

    try:
        context = load_config(args.config) if args.config else {}
        source = str(args.config) if args.config else "--set"
        check_keys(context, source)
        sets = parse_sets(args.set)
        check_keys(sets, "--set")
        project = render({**context, **sets}, args.output_dir, args.template, source, args.overwrite)
    except (UnknownOptionError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CookiecutterException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
