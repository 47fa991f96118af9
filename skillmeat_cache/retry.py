"""Re-running a whole unit of work when the database is busy.

A ``with`` block cannot re-run itself, so the retry wraps a function that receives a
fresh unit of work on every attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from .errors import DatabaseBusyError
from .uow import AbstractUnitOfWork

__all__ = ["run_with_retry"]

T = TypeVar("T")
U = TypeVar("U", bound=AbstractUnitOfWork)


def run_with_retry(
    uow_factory: Callable[[], U],
    work: Callable[[U], T],
    *,
    attempts: int = 5,
    initial_wait: float = 0.05,
    max_wait: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = (DatabaseBusyError,),
) -> T:
    """Run ``work(uow)`` inside ``with uow:``, retrying on DatabaseBusyError (or the
    exception types given as ``retry_on``).

    Each attempt gets a new unit of work from ``uow_factory`` and re-runs ``work`` from
    the start; waits are random, growing exponentially up to ``max_wait`` seconds. After
    ``attempts`` tries the last error propagates. Other errors are not retried.
    """
    result: T
    for attempt in Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=initial_wait, max=max_wait),
        reraise=True,
    ):
        with attempt:
            uow = uow_factory()
            with uow:
                result = work(uow)
    return result
