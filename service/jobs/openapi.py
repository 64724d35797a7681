"""The `/jobs` routes in the served OpenAPI document (BentoML does not see mounted apps).

Submit's body is pydantic's own `JobRequest` schema plus the rules its validator checks in
code (counts xor total, mix only with total). A body that fits it can still be refused with
422 (a class the model lacks, more images than GAN_JOBS_MAX_IMAGES in all) or 429 (the
active-job and storage limits): rules across fields and server state that a schema cannot
spell out.
"""

from __future__ import annotations

from typing import Any

from service.jobs.schemas import JobRequest, JobStatus

ERROR = {"$ref": "#/components/schemas/Error"}
TASK_ID = {
    "name": "task_id",
    "in": "query",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "The id `POST /jobs/submit` answered",
}
RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "string"}}}


def _present(field: str, type_: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"type": type_}}}


def job_schemas(to_oas30: Any) -> dict[str, Any]:
    """Components: `JobRequest`, `JobStatus` and `JobSubmitted`, as OpenAPI 3.0 schemas."""
    request = to_oas30(JobRequest.model_json_schema())
    request["oneOf"] = [_present("counts", "object"), _present("total", "integer")]
    request["anyOf"] = [{"not": _present("mix", "object")}, _present("total", "integer")]
    submitted = {
        "type": "object",
        "required": ["task_id", "status"],
        "properties": {"task_id": {"type": "string"}, "status": {"type": "string"}},
    }
    return {
        "JobRequest": request,
        "JobStatus": to_oas30(JobStatus.model_json_schema()),
        "JobSubmitted": submitted,
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(statuses: dict[str, str], common: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {code: common[code] for code in ("401", "500") if code in common}
    out.update({code: _json(text, ERROR) for code, text in statuses.items()})
    return out


def _status_route(
    method: str, op_id: str, description: str, ok: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        method: {
            "tags": ["Jobs"],
            "operationId": op_id,
            "description": description,
            "parameters": [TASK_ID],
            "responses": {"200": ok, **extra},
        }
    }


def job_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """Paths of the job routes; `errors` are the service's shared error responses."""
    status = _json("The job's status", {"$ref": "#/components/schemas/JobStatus"})
    submitted = _json("The new job", {"$ref": "#/components/schemas/JobSubmitted"})
    lookup = {"400": "`task_id` is missing.", "404": "No job has this `task_id`."}
    limits = {k: errors[k] for k in ("408", "413", "415")}
    refused = {
        "400": "The body does not fit the schema.",
        "404": "`model` is not one of GET /models.",
        "422": "A class the model lacks, more images than GAN_JOBS_MAX_IMAGES, a seed range "
        "past the largest seed, or a result larger than GAN_JOBS_MAX_STORAGE_BYTES.",
    }
    busy = {
        "429": {
            **_json("GAN_JOBS_MAX_ACTIVE jobs are active, or storage is full.", ERROR),
            "headers": RETRY_AFTER,
        }
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    result = {
        "description": "The result file, streamed",
        "content": {"application/octet-stream": binary, "application/x-tar": binary},
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "X-Sha256": {"schema": {"type": "string"}},
        },
    }
    return {
        "/jobs/submit": {
            "post": {
                "tags": ["Jobs"],
                "operationId": "jobs__submit",
                "description": "Start a job making a data set of labelled images.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}
                    },
                },
                "responses": {
                    "200": submitted,
                    **_errors(refused, errors),
                    **limits,
                    **busy,
                },
            }
        },
        "/jobs/status": _status_route(
            "get",
            "jobs__status",
            "Progress: images done, images/s, ETA.",
            status,
            _errors(lookup, errors),
        ),
        "/jobs/get": _status_route(
            "get",
            "jobs__get",
            "The result file of a completed job.",
            result,
            _errors(
                {
                    "400": "`task_id` is missing, or the job is still pending or running.",
                    "404": lookup["404"],
                    "409": "The job failed, was canceled or was interrupted.",
                    "410": "The result has expired.",
                },
                errors,
            ),
        ),
        "/jobs/cancel": _status_route(
            "put",
            "jobs__cancel",
            "Stop a pending or running job; takes no body.",
            status,
            {**_errors(lookup, errors), **limits},
        ),
        "/jobs/retry": _status_route(
            "post",
            "jobs__retry",
            "A new job with the same request (the same bytes); takes no body.",
            submitted,
            {**_errors({**lookup, "422": refused["422"]}, errors), **limits, **busy},
        ),
    }
