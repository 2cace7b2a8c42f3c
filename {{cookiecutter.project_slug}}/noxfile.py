"""Tasks of {{ cookiecutter.project_name }}; CI runs the same sessions.

    nox -s pipeline       # the whole local pipeline on sample data, no workspace needed
    nox -s tests          # both test lanes (JVM Spark, Sail + Delta); the run report in headless Chromium
    nox -s lint           # ruff
    nox -s bundle_check   # offline `databricks bundle validate` for every target
    nox -s lock           # recompile requirements/lock.txt after changing a pin
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "bundle_check"]
LOCK = "requirements/lock.txt"
# tests/test_report.py opens the run report in headless Chromium through its chromedriver (Debian's
# packages; GitHub's and Azure's Ubuntu images ship both at these paths).
BROWSER = ("/usr/bin/chromium", "/usr/bin/chromedriver")
BROWSER_PACKAGES = ("chromium", "chromium-driver")


def install_browser(session: nox.Session) -> None:
    """Chromium and chromedriver for the report's browser test: installed with apt when this runs as
    root (CI containers, Debian machines); otherwise the fix is named before the tests start."""
    if all(os.access(path, os.X_OK) for path in BROWSER):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", external=True)
        session.run("apt-get", "install", "-y", "--no-install-recommends", *BROWSER_PACKAGES, external=True)
        return
    session.warn(f"{' or '.join(BROWSER)} is missing, so tests/test_report.py will fail. Fix: sudo apt-get install "
                 + " ".join(BROWSER_PACKAGES))


def install(session: nox.Session) -> None:
    # Compiled at install: with PYTHONDONTWRITEBYTECODE set, every command would compile its imports again.
    session.install("--compile-bytecode", "-r", LOCK)
    session.install("--no-deps", "-e", ".")


@nox.session(python="{{ cookiecutter.python_version }}")
def tests(session: nox.Session) -> None:
    install(session)
    install_browser(session)
    # Two workers: the JVM lane on one, each module fixture built once (tests/conftest.py schedules them).
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session(python="{{ cookiecutter.python_version }}")
def pipeline(session: nox.Session) -> None:
    install(session)
    # Writes sample data first when the landing folder is empty.
    session.run("python", "-m", "{{ cookiecutter.package_name }}", "run", "all", "--target", "local",
                *session.posargs)


@nox.session(python="{{ cookiecutter.python_version }}")
def bundle_check(session: nox.Session) -> None:
    install(session)
    session.run("python", "-m", "{{ cookiecutter.package_name }}", "bundle-check", *session.posargs)


@nox.session(python="{{ cookiecutter.python_version }}")
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.5")
    session.run("ruff", "check", ".")


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    session.run("uv", "pip", "compile", "-q", "-p", "{{ cookiecutter.python_version }}", "--custom-compile-command",
                "nox -s lock", "--annotation-style", "line",
                "requirements/base.txt", "requirements/local.txt", "requirements/dev.txt", "-o", LOCK)
