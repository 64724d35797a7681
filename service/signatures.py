"""API methods' signatures computed once instead of on every request.

BentoML's `APIMethod.__get__` runs `inspect.signature(func)` each time an API method is read
from the service instance, which its server does once per request (in bare BentoML too).
`inspect.signature` returns a function's `__signature__` as is when it has one, so setting
it once, to the very signature inspect would compute, takes that work off the request path:
38 -> 18 µs per read of `GanService.generate` (timeit, 20,000 reads).
"""

from __future__ import annotations

import inspect
from typing import Any


def precompute(service: Any) -> None:
    """Give every API function of a `@bentoml.service` its own `__signature__`."""
    for api in service.apis.values():
        api.func.__signature__ = inspect.signature(api.func)
