"""Self-help in the customer's window: what :class:`agent.tk_help.HelpWindowUI` draws
for :class:`agent.self_help.SelfHelpPrompter` while a request waits.

In the waiting screen, under the place in the queue: what self-help is doing (the last
lines of it, a fix's output included), then the offers, best first (ranked by the
organisation's past cases), each with the problem found here and its evidence, what
the fix does and its record ("solved 7 of 9 past cases"), to choose one and **Try
this fix**, or **No thanks, wait for a technician**. One line an offer (its title
and record), and the details of the one chosen under them, so that the buttons stay
on the screen. The run itself is asked in the
window's consent dialog, exactly as a technician's fix is (the script can be read
first); afterwards "That fixed it" or "Still broken", in a dialog whose buttons take a
press only once it has been seen (:meth:`agent.tk_ui.CustomerWindow._arm`).

Every function here runs on the Tk thread. Every text from outside (the organisation's
fix titles and descriptions, evidence from this computer's diagnostics, a fix's
output) is made inert by :func:`protocol.safe_text.safe_text` before it is shown
(:func:`offer_view`, and the prompter's ``progress``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.i18n import t
from agent.tk_ui import ALLOW_COLOUR, DENY_COLOUR
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    from agent.self_help import Offer
    from agent.tk_ui import CustomerWindow

HINT_COLOUR = "#455a64"
WRAP = 480
#: Lines of what self-help is doing kept on the screen (the latest).
PROGRESS_LINES = 4


@dataclass(frozen=True)
class OfferView:
    """What the window shows of one offer, every outside text already made inert."""

    title: str
    problem: str
    evidence: tuple[str, ...]
    description: tuple[str, ...]
    record: str


def offer_view(offer: Offer) -> OfferView:
    return OfferView(
        title=safe_text(offer.title, 200),
        problem=safe_text(offer.problem_title, 200),
        evidence=tuple(safe_text(line, 300) for line in offer.evidence[:2]),
        description=tuple(safe_text(line, 300) for line in offer.description.splitlines()[:4]),
        record=offer.record,
    )


class SelfHelpPanel:
    """Self-help's part of the waiting screen. ``area()`` is the frame to draw in (None
    while no waiting screen is shown); :meth:`reset` when that screen is built anew."""

    def __init__(self, window: CustomerWindow, area: Callable[[], Any]) -> None:
        self.window = window
        self.tk = window.tk
        self._area = area
        self.lines: list[str] = []
        self.label: Any = None
        self.offers_frame: Any = None

    def reset(self) -> None:
        self.lines = []
        self.label = self.offers_frame = None

    def progress(self, text: str) -> None:
        """One more line of what self-help is doing (``text`` is already inert)."""
        area = self._area()
        if area is None:
            return
        self.lines = (self.lines + text.splitlines())[-PROGRESS_LINES:]
        if self.label is None:
            self.label = self.tk.Label(
                area, text="", fg=HINT_COLOUR, wraplength=WRAP, justify="left"
            )
            self.label.pack(anchor="w", pady=(6, 0))
        self.label.configure(text="\n".join(self.lines))

    def show_offers(
        self, offers: Sequence[OfferView], answer: Callable[[int | None], None]
    ) -> None:
        """The offers, the best one chosen; ``answer`` gets the index tried, or None."""
        area = self._area()
        if area is None:
            answer(None)
            return
        tk = self.tk
        self.clear_offers()
        frame = self.offers_frame = tk.Frame(area)
        frame.pack(fill="x", pady=(10, 0))
        tk.Label(frame, text=t("gethelp.try_first"), font=("TkDefaultFont", 12, "bold")).pack(
            anchor="w"
        )
        tk.Label(frame, text=t("selfhelp.offers_intro"), wraplength=WRAP, justify="left").pack(
            anchor="w"
        )
        # One line an offer (its title and record, to compare them); the details of the
        # one chosen below (a window taller than the screen would hide the buttons).
        chosen = tk.IntVar(value=0)
        details = tk.Label(frame, text="", fg=HINT_COLOUR, wraplength=WRAP - 30, justify="left")

        def show_details() -> None:
            view = offers[chosen.get()]
            lines = [t("gethelp.for_problem", problem=view.problem), *view.evidence]
            details.configure(text="\n".join([*lines, *view.description]))

        for number, view in enumerate(offers):
            tk.Radiobutton(
                frame,
                text=f"{view.title} ({view.record})",
                value=number,
                variable=chosen,
                command=show_details,
                anchor="w",
                wraplength=WRAP - 30,
                justify="left",
            ).pack(anchor="w", pady=(4, 0))
        details.pack(anchor="w", padx=(28, 0), pady=(6, 0))
        show_details()
        row = tk.Frame(frame)
        row.pack(fill="x", pady=(10, 0))

        def done(value: int | None) -> None:
            answer(value)
            self.clear_offers()

        button = self.window._button
        button(row, t("gethelp.try_fix"), ALLOW_COLOUR, lambda: done(chosen.get())).pack(
            side="left"
        )
        button(row, t("gethelp.no_thanks"), DENY_COLOUR, lambda: done(None)).pack(
            side="left", padx=(10, 0)
        )

    def clear_offers(self) -> None:
        if self.offers_frame is not None:
            self.offers_frame.destroy()
            self.offers_frame = None


def ask_fixed(window: CustomerWindow, title: str, answer: Callable[[bool], None]) -> None:
    """ "That fixed it" (True) or "Still broken" (False) after a fix ran (``title`` is
    already inert); the buttons are armed like a consent question's."""
    tk = window.tk
    dialog: Any = window._open_dialog(t("gethelp.fixed_title"))
    tk.Label(
        dialog,
        text=t("gethelp.fixed_question", title=title),
        font=("TkDefaultFont", 13, "bold"),
        wraplength=440,
        justify="left",
    ).pack(anchor="w")
    tk.Label(dialog, text=t("gethelp.fixed_hint"), wraplength=440, justify="left").pack(
        anchor="w", pady=(8, 0)
    )
    window._allow_or_deny(dialog, answer, (t("gethelp.fixed_yes"), t("gethelp.fixed_no")))
