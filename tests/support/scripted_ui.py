"""A scripted customer for in-process tests: answers consent questions from a table."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.ui import CommandHandler, SessionInfo


class ScriptedUI:
    """Implements ``agent.ui.CustomerUI``; unknown questions are declined."""

    def __init__(
        self, answers: dict[str, bool] | None = None, rating: tuple[int, str] | None = None
    ) -> None:
        self.answers = answers or {}
        self.rating = rating
        self.rating_asked = False
        self.asked: list[str] = []
        self.info: SessionInfo | None = None
        self.notices: list[str] = []
        self.active: list[list[str]] = []
        self.ended: str | None = None
        self.commands: asyncio.Queue[str] = asyncio.Queue()

    def session_started(self, info: SessionInfo) -> None:
        self.info = info

    async def ask_consent(self, capability: Any, detail: str) -> bool:
        self.asked.append(capability.name)
        return self.answers.get(capability.name, False)

    def show_active(self, granted: list[str]) -> None:
        self.active.append(list(granted))

    def notify(self, text: str) -> None:
        self.notices.append(text)

    def session_ended(self, reason: str) -> None:
        self.ended = reason

    async def ask_rating(self) -> tuple[int, str] | None:
        self.rating_asked = True
        return self.rating

    async def run(self, on_command: CommandHandler) -> None:
        while True:
            await on_command(await self.commands.get())
