"""The Slack stand-in's failure modes, switched on at run time by tests and the demo.

Each fault applies to the next ``n`` calls of some methods (or of any) and then clears:
an HTTP status (429 with ``Retry-After``, 5xx, or a 200 carrying Slack's ``fatal_error``),
an error answer such as ``missing_scope``, or a *hold* — the call is carried out (a post
is stored and shows in the history) but its answer waits until :meth:`Faults.release`,
or for ever: Slack accepting a post whose answer the bot never gets. :meth:`Faults.down`
fails every call until :meth:`Faults.up`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    retry_after: int | None
    methods: frozenset[str] | None
    error: str | None = None  # answer 200 with this error instead of an HTTP status

    def applies(self, method: str) -> bool:
        return self.remaining > 0 and (self.methods is None or method in self.methods)


@dataclass(slots=True)
class _Hold:
    remaining: int
    methods: frozenset[str] | None

    def applies(self, method: str) -> bool:
        return self.remaining > 0 and (self.methods is None or method in self.methods)


class Faults:
    """What is broken now; :meth:`answer` and :meth:`hold_answer` apply it to a call."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._holds: list[_Hold] = []
        self._released = asyncio.Event()
        self._holding = asyncio.Event()
        self._down = False
        self.held = 0  # calls carried out whose answer is being held back

    def add(
        self,
        n: int,
        status: int,
        *,
        retry_after: int | None = None,
        error: str | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        self._faults.append(_Fault(n, status, retry_after, _methods(methods), error))

    def hold(self, n: int, methods: Collection[str] | None) -> None:
        self._released.clear()
        self._holds.append(_Hold(n, _methods(methods)))

    def release(self) -> None:
        self._released.set()

    async def wait_held(self) -> None:
        await self._holding.wait()

    def down(self) -> None:
        self._down = True

    def up(self) -> None:
        self._down = False

    def answer(self, method: str) -> web.Response | None:
        """The failure that answers this call of ``method`` instead of Slack, if any."""
        if self._down:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        for fault in self._faults:
            if fault.applies(method):
                fault.remaining -= 1
                if fault.error is not None:
                    return web.json_response({"ok": False, "error": fault.error})
                if fault.status == 429:
                    headers = {"Retry-After": str(fault.retry_after)}
                    body = {"ok": False, "error": "ratelimited"}
                    return web.json_response(body, status=429, headers=headers)
                return web.json_response({"ok": False, "error": "fatal_error"}, status=fault.status)
        self._faults = [fault for fault in self._faults if fault.remaining > 0]
        return None

    async def hold_answer(self, method: str) -> None:
        """Wait for :meth:`release` when a hold applies to this call of ``method``."""
        for hold in self._holds:
            if hold.applies(method):
                hold.remaining -= 1
                self.held += 1
                self._holding.set()
                try:
                    await self._released.wait()
                finally:
                    self.held -= 1
                    if not self.held:
                        self._holding.clear()
                return
        self._holds = [hold for hold in self._holds if hold.remaining > 0]


def _methods(methods: Collection[str] | None) -> frozenset[str] | None:
    return frozenset(methods) if methods is not None else None
