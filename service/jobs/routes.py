"""The job routes, BentoML's task endpoints in shape (`@bentoml.task`'s submit, status, get,
cancel and retry under `/jobs`), backed by the service's own store (service/jobs/store.py):

| route | answer |
|---|---|
| `POST /jobs/submit` (JSON `JobRequest`) | `{task_id, status}` |
| `GET /jobs/status?task_id=` | `JobStatus`: state, images done / total, images/s, ETA |
| `GET /jobs/get?task_id=` | the result file, streamed |
| `PUT /jobs/cancel?task_id=` | the status after the cancel |
| `POST /jobs/retry?task_id=` | a new job with the same request (and so the same bytes) |
"""

from __future__ import annotations

import datetime
import functools
import json
from dataclasses import dataclass

import anyio
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from service import runtime
from service.errors import RequestError
from service.jobs.runner import JobRunner, result_path
from service.jobs.schemas import JobRequest, JobStatus
from service.jobs.spec import make_spec
from service.jobs.store import ACTIVE, CANCELED, COMPLETED, EXPIRED, JobRejected, JobRow, JobStore
from service.settings import JobLimits

MEDIA_TYPES = {"npz": "application/octet-stream", "tar": "application/x-tar"}


@dataclass
class Jobs:
    """This process's view of the job system: limits, store, and its runner once started."""

    limits: JobLimits
    store: JobStore
    runner: JobRunner | None = None


@functools.cache
def jobs() -> Jobs:
    limits = JobLimits.from_env(runtime.settings())
    return Jobs(limits, JobStore(limits.jobs_dir / "jobs.db"))


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).isoformat()


def job_status(row: JobRow, ttl_s: int) -> JobStatus:
    spec = row.spec
    eta = None
    if row.status in ACTIVE and row.rate:
        eta = round((spec.total - row.done) / row.rate, 1)
    expires = row.completed_at + ttl_s if row.status == COMPLETED and row.completed_at else None
    return JobStatus(
        task_id=row.task_id,
        status=row.status,
        created_at=_iso(row.created_at),  # type: ignore[arg-type]
        executed_at=_iso(row.executed_at),
        completed_at=_iso(row.completed_at),
        model=spec.model,
        format=spec.format,
        seed=spec.seed,
        total=spec.total,
        done=row.done,
        images_per_s=None if row.rate is None else round(row.rate, 1),
        eta_s=eta,
        result_bytes=row.result_bytes,
        sha256=row.sha256,
        expires_at=_iso(expires),
        error=row.error,
    )


def _field_error(exc: ValidationError) -> RequestError:
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors]
    first = ".".join(str(p) for p in errors[0]["loc"]) or "body"
    message = "; ".join(parts)
    return RequestError(first, message.split(": ", 1)[1] if len(parts) == 1 else message, 400)


async def _submit(body: dict) -> Response:
    try:
        req = JobRequest.model_validate(body)
    except ValidationError as exc:
        return _field_error(exc).response()
    job = jobs()
    try:
        spec = make_spec(runtime.registry(), req, job.limits.max_images)
    except RequestError as exc:
        return exc.response()
    field = "counts" if req.counts is not None else "total"
    request = req.model_dump(mode="json", exclude_none=True)
    request["seed"] = spec.seed  # a retry makes the same data set, a drawn seed included
    try:
        task_id = await anyio.to_thread.run_sync(
            job.store.submit,
            spec,
            request,
            job.limits.max_active,
            job.limits.max_storage_bytes,
            field,
        )
    except JobRejected as exc:
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        response = RequestError(exc.field, exc.message, exc.status).response()
        response.headers.update(headers or {})
        return response
    if job.runner is not None:
        job.runner.wake()
    return JSONResponse({"task_id": task_id, "status": "pending"})


async def submit(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        return RequestError("body", f"not valid JSON: {exc}", 400).response()
    if not isinstance(body, dict):
        return RequestError("body", "must be a JSON object", 400).response()
    return await _submit(body)


async def _row(request: Request) -> JobRow | Response:
    task_id = request.query_params.get("task_id")
    if not task_id:
        return RequestError("task_id", "is required (a query parameter)", 400).response()
    row = await anyio.to_thread.run_sync(jobs().store.get, task_id)
    if row is None:
        return RequestError("task_id", f"no job {task_id[:64]!r}", 404).response()
    return row


async def status(request: Request) -> Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    return JSONResponse(job_status(row, jobs().limits.ttl_s).model_dump())


async def get_result(request: Request) -> Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    if row.status in ACTIVE:
        return RequestError(
            "task_id", f"job {row.task_id} is {row.status} ({row.done}/{row.spec.total})", 400
        ).response()
    if row.status != COMPLETED:
        code = 410 if row.status == EXPIRED else 409
        message = f"job {row.task_id} is {row.status}: {row.error}"
        return RequestError("task_id", message, code).response()
    path = result_path(jobs().limits.results_dir, row.task_id, row.spec.format)
    if not path.is_file():
        return RequestError("task_id", f"the result of job {row.task_id} is gone", 410).response()
    name = f"{row.spec.model}-{row.task_id}.{row.spec.format}"
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[row.spec.format],
        filename=name,
        headers={"ETag": f'"{row.sha256}"', "X-Sha256": row.sha256 or ""},
    )


async def cancel(request: Request) -> Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    store = jobs().store
    await anyio.to_thread.run_sync(
        store.end, row.task_id, CANCELED, "canceled by the client", ACTIVE
    )
    after = await anyio.to_thread.run_sync(store.get, row.task_id)
    return JSONResponse(job_status(after or row, jobs().limits.ttl_s).model_dump())


async def retry(request: Request) -> Response:
    row = await _row(request)
    if isinstance(row, Response):
        return row
    return await _submit(row.request)


jobs_app = Starlette(
    routes=[
        Route("/submit", submit, methods=["POST"]),
        Route("/status", status, methods=["GET"]),
        Route("/get", get_result, methods=["GET"]),
        Route("/cancel", cancel, methods=["PUT"]),
        Route("/retry", retry, methods=["POST"]),
    ]
)
