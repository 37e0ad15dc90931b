"""crosswire.testing itself: the case table is complete and well-formed, and ``eventually``
waits, gives up and reports as documented."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from crosswire.testing import CASES, Case, _cases_consume, _cases_publish, _cases_settle, eventually


def test_every_case_function_is_in_the_table_once() -> None:
    written = {
        name
        for module in (_cases_consume, _cases_publish, _cases_settle)
        for name, value in vars(module).items()
        if inspect.iscoroutinefunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }
    assert written, "no case functions found"
    listed = [case.run.__name__ for case in CASES]
    assert sorted(listed) == sorted(set(listed)), "a case is listed twice"
    assert written == set(listed), f"written but not listed: {written - set(listed)}"
    assert all(case.name == case.run.__name__ for case in CASES)
    assert all(case.doc for case in CASES), "every case says what it checks"


def test_a_case_naming_an_unknown_feature_is_refused() -> None:
    async def run(ctx: object) -> None: ...

    with pytest.raises(ValueError, match="unknown features"):
        Case(name="x", run=run, needs=("durabel",))


async def test_eventually_returns_once_a_sync_predicate_holds() -> None:
    calls = 0

    def ready() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    await eventually(ready, "three calls", 1)
    assert calls == 3


async def test_eventually_awaits_an_async_predicate() -> None:
    flag = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, flag.set)

    async def ready() -> bool:
        await asyncio.sleep(0)
        return flag.is_set()

    await eventually(ready, "the flag", 1)


async def test_eventually_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"not within 0\.1s: the moon \(still false after \d+ checks in 0\.1s\)"):
        await eventually(lambda: False, "the moon", 0.1)


async def test_eventually_bounds_a_predicate_that_never_returns() -> None:
    async def stuck() -> bool:
        await asyncio.sleep(60)
        return True

    with pytest.raises(AssertionError, match=r"not within 0\.1s: a stuck check"):
        await eventually(stuck, "a stuck check", 0.1)


async def test_eventually_lets_a_predicate_error_through() -> None:
    def broken() -> bool:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        await eventually(broken, "a broken check", 1)
