"""Tasks of {{ cookiecutter.project_name }}; CI runs the same sessions.

    nox -s pipeline       # the whole local pipeline on sample data, no workspace needed
    nox -s tests          # both test lanes (JVM Spark, Sail + Delta)
    nox -s lint           # ruff
    nox -s bundle_check   # offline `databricks bundle validate` for every target
    nox -s lock           # recompile requirements/lock.txt after changing a pin
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "bundle_check"]
LOCK = "requirements/lock.txt"


def install(session: nox.Session) -> None:
    # Compiled at install: with PYTHONDONTWRITEBYTECODE set, every command would compile its imports again.
    session.install("--compile-bytecode", "-r", LOCK)
    session.install("--no-deps", "-e", ".")


@nox.session(python="{{ cookiecutter.python_version }}")
def tests(session: nox.Session) -> None:
    install(session)
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
