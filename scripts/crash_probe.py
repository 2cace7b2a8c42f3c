"""Kill the local lifecycle at many points and check that a rerun loses and duplicates nothing.

    python scripts/crash_probe.py [--kills 10] [--out build/crash_probe]

Renders the default project, runs one clean ``run all --target local`` as the reference, then for
each kill starts a fresh copy of the project, waits for the next stage in turn to start, SIGKILLs
the run a moment later, reruns ``run all`` to the end and compares with the reference: bronze rows per file,
silver rows and unique primary keys, quarantine and gold row counts, a @champion in the registry,
and, during the reference run, a second run refused by the run lock.  Prints one line per kill and the totals; it
asserts nothing (a probe, like the benchmarks), and exits 1 when any kill lost or duplicated data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from render import render  # noqa: E402


def command(project: Path, *args: str) -> list[str]:
    package = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]
    return [sys.executable, "-m", package, *args]


def environment(project: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(project / "src")}


def run_all(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(project, "run", "all", "--target", "local", "--json"), cwd=project,
                          env=environment(project), capture_output=True, text=True, timeout=1800)


def state(project: Path) -> dict[str, Any]:
    """Row counts that must not depend on where a run was killed."""
    from deltalake import DeltaTable

    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    tables = project / ".local" / "warehouse" / answers["dev_catalog"] / answers["schema_name"]
    out: dict[str, Any] = {}
    for name in ("bronze_churn_events", "silver_churn_events", "quarantine_churn_events", "gold_customer_monthly"):
        frame = DeltaTable(str(tables / name)).to_pandas()
        out[name] = len(frame)
        if name == "bronze_churn_events":
            out["bronze_rows_per_file"] = frame.groupby("_source_file").size().to_dict()
        if name == "silver_churn_events":
            out["silver_duplicate_keys"] = int(frame.duplicated(["customer_id", "month"]).sum())
    return out


def champion(project: Path) -> bool:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / '.local' / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{project / '.local' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    try:
        client.get_model_version_by_alias("customer_churn_model", "champion")
    except Exception:  # no alias, no model: both mean no champion
        return False
    return True


def landing_only(project: Path) -> None:
    """Remove every table, registry and checkpoint; keep the landing files."""
    local = project / ".local"
    for path in local.iterdir():
        if path.name != "volumes":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for landing in local.glob("volumes/*/*/landing"):
        for path in landing.iterdir():
            if path.name != "raw":
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "crash_probe")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    template = render({}, args.out / "template")
    # The landing files are written once, before any run: files land whole, as real sources do.
    subprocess.run(command(template, "sample-data"), cwd=template, env=environment(template), check=True,
                   capture_output=True)
    started = time.perf_counter()
    # While the reference run holds the run lock, a second run must be refused.
    reference_run = subprocess.Popen(command(template, "run", "all", "--target", "local", "--json"), cwd=template,
                                     env=environment(template), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
    reference_log = ""
    for line in reference_run.stderr:  # the lock is taken before the first stage starts
        reference_log += line
        if "] bronze ..." in line:
            break
    concurrent = subprocess.run(command(template, "run", "bronze", "--target", "local"), cwd=template,
                                env=environment(template), capture_output=True, text=True, timeout=300)
    refused = concurrent.returncode == 2 and "another run" in concurrent.stderr
    reference_log += reference_run.stderr.read()
    reference_run.wait(timeout=1800)
    duration = time.perf_counter() - started
    if reference_run.returncode != 0:
        print(reference_log[-3000:])
        return 1
    reference = state(template)
    print(f"reference run all: {duration:.0f} s; {reference['silver_churn_events']} silver rows; a second run "
          f"started meanwhile was refused: {refused}")
    landing_only(template)  # every trial starts from the rendered project and its landing files
    failures = 0
    stages = subprocess.run(command(template, "stages"), cwd=template, env=environment(template),
                            capture_output=True, text=True, check=True).stdout.split()
    for index in range(args.kills):
        # Kill number i waits for stage i (round robin) to start, then lets it work for a while.
        stage = stages[index % len(stages)]
        delay = 0.3 + 2.5 * ((index * 7919) % 10) / 10
        project = args.out / f"kill_{index:02d}"
        shutil.copytree(template, project)
        victim = subprocess.Popen(command(project, "run", "all", "--target", "local"), cwd=project,
                                  env=environment(project), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        for line in victim.stderr:
            if f"] {stage} ..." in line:
                break
        time.sleep(delay)
        where = f"in {stage}, {delay:.1f} s after it started"
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
        else:
            where += " (the run had finished)"
        victim.wait()
        rerun = run_all(project)
        after = state(project) if rerun.returncode == 0 else {}
        same = after == reference and champion(project)
        failures += not same
        print(f"kill {index + 1:2d} {where}; rerun exit "
              f"{rerun.returncode}; state equals the reference: {same}")
        if rerun.returncode != 0:
            print("  rerun failed: " + rerun.stderr[-1500:].replace("\n", "\n  "))
        elif not same:
            print(json.dumps({"reference": reference, "after": after}, default=str)[:2000])
        shutil.rmtree(project)
    print(f"{args.kills - failures} of {args.kills} kills survived with nothing lost or duplicated")
    return 1 if failures or not refused else 0


if __name__ == "__main__":
    sys.exit(main())
