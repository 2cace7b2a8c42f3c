"""Sessions of the template repository; CI (.ci/run) runs the README's `tests` command.

    nox -s demo     # render the defaults into build/demo and run the project's whole local pipeline
    nox -s tests    # the harness: option matrix, golden manifests, bad inputs, generated suites
    nox -s lint     # ruff on the template and on a rendered project
    nox -s golden   # rewrite tests/golden/*.txt after an intended change of the file set
    nox -s bench    # print render, test-suite, ingestion and training timings (no assertions)
    nox -s lock     # recompile the project template's lock after changing a pin
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).resolve().parent
LOCK = "{{cookiecutter.project_slug}}/requirements/lock.txt"
BUILD = ROOT / "build"


def install(session: nox.Session) -> None:
    """The generated project's exact lock plus the template tools: one environment for both.
    Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) every
    process would otherwise compile each imported module again, seconds per command."""
    session.install("--compile-bytecode", "-r", LOCK, "-r", "requirements/template.txt")


# The generated run report is tested in headless Chromium through its chromedriver (Debian's packages).
BROWSER = ("/usr/bin/chromium", "/usr/bin/chromedriver")
BROWSER_PACKAGES = ("chromium", "chromium-driver")


def install_browser(session: nox.Session) -> None:
    """Chromium and chromedriver for the report's browser tests, with apt when this runs as root (a new
    Debian machine, CI); otherwise the tests would fail later, so the session stops now with the fix."""
    if all(os.access(path, os.X_OK) for path in BROWSER):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "--no-install-recommends", *BROWSER_PACKAGES, external=True,
                    env={"DEBIAN_FRONTEND": "noninteractive"})
        return
    session.error(f"{' or '.join(BROWSER)} is missing. Fix: sudo apt-get install {' '.join(BROWSER_PACKAGES)}")


def render_defaults(session: nox.Session, name: str) -> Path:
    out = BUILD / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    session.run("python", "scripts/render.py", "-o", str(out), silent=True)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    return project


@nox.session
def tests(session: nox.Session) -> None:
    install(session)
    install_browser(session)
    session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    install(session)
    session.run("ruff", "check", "--no-cache", ".")
    project = render_defaults(session, "lint")
    session.run("ruff", "check", "--no-cache", str(project))


@nox.session
def demo(session: nox.Session) -> None:
    install(session)
    project = render_defaults(session, "demo")
    session.install("--no-deps", "-e", str(project))
    package = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]
    session.chdir(project)
    session.log(f"rendered {project}; checking its bundle offline, then running its whole lifecycle")
    session.run("python", "-m", package, "bundle-check")
    started = time.perf_counter()
    session.run("python", "-m", package, "run", "all", "--target", "local", "--json")
    session.log(f"run all: sample data -> ingest -> features -> train -> validate -> promote -> score -> monitor "
                f"in {time.perf_counter() - started:.0f} s wall (goal <= 60 s)")
    session.log("a later period whose distributions have shifted arrives; the next run detects it and retrains")
    session.run("python", "-m", package, "sample-data", "--drift")
    session.run("python", "-m", package, "run", "all", "--target", "local")
    reports = project / ".local" / "volumes" / "dev"
    session.log(f"demo finished: the project is in {project}; PSI charts and validation reports under {reports}; "
                f"try `python -m {package} rollback --reason demo` there")


@nox.session
def golden(session: nox.Session) -> None:
    install(session)
    session.run("python", "-m", "pytest", "tests/test_render.py", "-k", "golden", env={"UPDATE_GOLDEN": "1"})


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Recompile the project template's requirements/lock.txt after changing a pin."""
    session.chdir(ROOT / "{{cookiecutter.project_slug}}")
    session.run("uv", "pip", "compile", "-q", "-p", "3.11", "--custom-compile-command", "nox -s lock",
                "--annotation-style", "line", "requirements/base.txt", "requirements/local.txt",
                "requirements/dev.txt", "-o", "requirements/lock.txt")


@nox.session
def bench(session: nox.Session) -> None:
    install(session)
    session.run("python", "scripts/bench.py", *session.posargs)


if __name__ == "__main__":
    sys.exit("run with nox: python -m nox -s <session>")
