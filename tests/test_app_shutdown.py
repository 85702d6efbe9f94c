"""The lifespan's shutdown ends every background task, even one that lost a cancel."""

from __future__ import annotations

import asyncio

from service.app import _stop


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 3:  # as a loop that lost two cancels, then not
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(_stop([task]), 5)
    assert task.cancelled() and swallowed == 3
