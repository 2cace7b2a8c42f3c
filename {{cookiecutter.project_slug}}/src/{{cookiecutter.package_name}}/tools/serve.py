"""Local real-time serving: MLflow's own scoring code for ``@champion`` behind a small router.

``python -m PACKAGE serve --target local --port 8080`` answers ``POST /invocations`` in MLflow's
request format (``dataframe_records`` / ``dataframe_split``, or CSV) exactly as ``mlflow models
serve`` would, because each request goes through ``mlflow.pyfunc.scoring_server.invocations``,
the function behind MLflow's server.  The router adds what a Databricks endpoint adds:

* **canary**: ``serving.canary_share`` of the requests are answered by ``@challenger``;
* **shadow**: ``@challenger`` answers a copy of every request after the response has gone out;
  its answer is logged, never returned;
* an **inference table**: every request, the answer returned and the shadow answer go to the
  ``serving_log`` Delta table (written in small batches by a background thread);
* **no restart on promotion or rollback**: the aliases are re-read every
  ``serving.refresh_seconds``; a new version is loaded before it replaces the old one.

``GET /version`` says what is served.  Everything is configured in ``conf/project.yml``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
import uvicorn
from deltalake import write_deltalake
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from ..config import ServingConfig
from ..ml.registry import RegistryError, mlflow_client, served_versions

# One row per request: what came in, who answered, and the shadow answer that was not returned.
SERVING_LOG_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("received_at", pa.timestamp("us", tz="UTC")), ("mode", pa.string()),
    ("served_alias", pa.string()), ("served_version", pa.string()), ("status_code", pa.int32()),
    ("latency_ms", pa.float64()), ("request", pa.string()), ("response", pa.string()),
    ("shadow_version", pa.string()), ("shadow_status_code", pa.int32()), ("shadow_response", pa.string()),
])
# The response header naming the model version that answered (``champion:3``).
SERVED_BY = "X-Served-By"


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version and the input schema MLflow checks requests against."""

    alias: str
    version: str
    model: Any

    @property
    def input_schema(self) -> Any:
        return self.model.metadata.get_input_schema()


def load_version(name: str, version: str, location: Callable[[str, str], str] | None = None) -> Any:
    """A version through MLflow's pyfunc loader, from ``location(name, version)`` when given (the runtime's
    cached local copy), else from the registry."""
    return mlflow.pyfunc.load_model(location(name, version) if location else f"models:/{name}/{version}")


class Router:
    """Which model versions are served and which one answers a request."""

    def __init__(self, name: str, settings: ServingConfig, load: Callable[[str, str], Any] = load_version,
                 seed: int | None = None) -> None:
        self.name, self.settings, self._load = name, settings, load
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.champion: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.refreshed_at: str | None = None

    def _served(self, alias: str, version: str) -> ServedModel:
        """The version as ``alias``, reusing a model already loaded (a promoted challenger is not loaded
        again); a new one is loaded before it is swapped in."""
        loaded = {m.version: m.model for m in (self.champion, self.challenger) if m is not None}
        return ServedModel(alias, version, loaded[version] if version in loaded else self._load(self.name, version))

    def refresh(self) -> bool:
        """Re-read ``@champion`` and ``@challenger`` (one registry call; an error keeps what is served); load
        what changed.  True when the served set changed."""
        champion_version, challenger_version = served_versions(mlflow_client(), self.name)
        if champion_version is None:
            raise RegistryError(f"{self.name} has no @champion. Fix: run `run all --target local` (or promote a "
                                "validated version) before serving")
        champion = self._served("champion", champion_version)
        challenger = self._served("challenger", challenger_version) if challenger_version else None
        with self._lock:
            changed = (champion.version, challenger and challenger.version) != (
                self.champion and self.champion.version, self.challenger and self.challenger.version)
            self.champion, self.challenger = champion, challenger
            self.refreshed_at = datetime.now(UTC).isoformat(timespec="seconds")
        return changed

    def current(self) -> tuple[ServedModel, ServedModel | None]:
        with self._lock:
            if self.champion is None:
                raise RegistryError("the router has not loaded @champion yet")
            return self.champion, self.challenger

    def choose(self, champion: ServedModel, challenger: ServedModel | None) -> tuple[ServedModel, ServedModel | None]:
        """(the model that answers, the model that answers a shadow copy or None)."""
        if challenger is None or self.settings.mode == "off":
            return champion, None
        if self.settings.mode == "shadow":
            return champion, challenger
        with self._lock:
            draw = self._random.random()
        return (challenger if draw < self.settings.canary_share else champion), None

    def describe(self) -> dict[str, Any]:
        champion, challenger = self.current()
        return {"model": self.name, "champion": champion.version,
                "challenger": challenger.version if challenger else None, "mode": self.settings.mode,
                "canary_share": self.settings.canary_share if self.settings.mode == "canary" else None,
                "refreshed_at": self.refreshed_at}


def answer(served: ServedModel, body: bytes, content_type: str) -> tuple[int, str, str]:
    """(status, body, media type) from MLflow's scoring code; a request it cannot parse or that does not
    match the model's signature is a 400 with MLflow's message, never a crash."""
    try:
        result = scoring_server.invocations(body, content_type, served.model, served.input_schema)
        return int(result.status), str(result.response), str(result.mimetype)
    except MlflowException as exc:
        return 400, json.dumps({"error_code": exc.error_code, "message": exc.message}), "application/json"
    except Exception as exc:  # the model itself failed on input that passed the schema
        return 400, json.dumps({"error_code": "BAD_REQUEST", "message": f"{type(exc).__name__}: {exc}"}), \
            "application/json"


class ServingLog:
    """Rows for the ``serving_log`` Delta table, appended by a background thread every ``interval``
    seconds (and on ``close``, which a SIGTERM or Ctrl-C reaches): requests never wait for a Delta
    commit.  A killed process loses at most the last ``interval`` of rows."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="serving-log", daemon=True)
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def append(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)

    def flush(self) -> int:
        """Append the rows gathered so far in one Delta commit; after a failed commit they wait for the next."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_deltalake(str(self.path), pa.Table.from_pylist(rows, schema=SERVING_LOG_SCHEMA), mode="append")
        except BaseException:
            with self._lock:
                self._rows[:0] = rows
            raise
        self.written += len(rows)
        return len(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as exc:  # the rows stay buffered for the next attempt; report and go on
                print(f"serving log: append to {self.path} failed: {exc}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()


def _refresh_loop(router: Router, stop: threading.Event, log: Callable[[str], None]) -> None:
    while not stop.wait(router.settings.refresh_seconds):
        try:
            if router.refresh():
                log(f"serving now: {json.dumps(router.describe())}")
        except Exception as exc:  # keep serving what is loaded; say why the refresh failed
            log(f"alias refresh failed, still serving the versions loaded before: {exc}")


def build_app(router: Router, serving_log: ServingLog,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> FastAPI:
    """The router's HTTP app.  ``router`` must have been refreshed once (it serves ``@champion``)."""
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        refresher = threading.Thread(target=_refresh_loop, args=(router, stop, log), name="alias-refresh",
                                     daemon=True)
        serving_log.start()
        refresher.start()
        try:
            yield
        finally:
            stop.set()
            serving_log.close()

    app = FastAPI(title=f"{router.name} (local router)", lifespan=lifespan)

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return router.describe()

    @app.get("/ping")
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "champion": router.current()[0].version}

    @app.post("/invocations")
    async def invocations(request: Request, background: BackgroundTasks) -> Response:
        received, started = datetime.now(UTC), time.perf_counter()
        body = await request.body()
        content_type = request.headers.get("content-type") or "application/json"
        served, shadow = router.choose(*router.current())
        status, text, media = await asyncio.to_thread(answer, served, body, content_type)
        row = {"request_id": request.headers.get("x-request-id") or uuid.uuid4().hex, "received_at": received,
               "mode": router.settings.mode, "served_alias": served.alias, "served_version": served.version,
               "status_code": status, "latency_ms": (time.perf_counter() - started) * 1000,
               "request": body.decode("utf-8", errors="replace"), "response": text,
               "shadow_version": None, "shadow_status_code": None, "shadow_response": None}
        if shadow is not None and status < 400:
            background.add_task(_shadow, shadow, body, content_type, row)
        else:
            serving_log.append(row)
        return Response(text, status_code=status, media_type=media,
                        headers={SERVED_BY: f"{served.alias}:{served.version}"})

    def _shadow(shadow: ServedModel, body: bytes, content_type: str, row: dict[str, Any]) -> None:
        """Runs after the response is sent: the challenger's answer is only ever logged."""
        status, text, _ = answer(shadow, body, content_type)
        serving_log.append({**row, "shadow_version": shadow.version, "shadow_status_code": status,
                            "shadow_response": text})

    @app.exception_handler(RegistryError)
    async def nothing_served(_: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"error_code": "NOT_READY", "message": str(exc)}, status_code=503)

    return app


def serve(name: str, settings: ServingConfig, log_path: Path, host: str, port: int,
          location: Callable[[str, str], str] | None = None) -> None:
    """Load ``@champion`` (and ``@challenger``) from ``location`` (see ``load_version``), then serve until
    interrupted."""
    router = Router(name, settings, load=functools.partial(load_version, location=location))
    router.refresh()
    print(f"serving {json.dumps(router.describe())} on http://{host}:{port} (POST /invocations, GET /version); "
          f"requests are logged to {log_path}", file=sys.stderr, flush=True)
    uvicorn.run(build_app(router, ServingLog(log_path)), host=host, port=port, log_level="warning")
