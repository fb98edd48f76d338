"""The window's "Get help": ask the organisation's help desk without a code.

An agent that pins an organisation key (built in, or ``--org-key``) offers "Get help"
under the code field. The screens, all in the customer's window:

1. the form: the problem in one sentence (the length limit counted as they type), the
   kind of problem from the organisation's list (verified against the pinned key;
   a clear sentence instead of the form when it cannot be);
2. the summary of this computer that would go with the request, in the window's
   review screen (:meth:`agent.tk_ui.CustomerWindow.review`): untick any line, or
   send nothing;
3. waiting: the place in the queue and the estimated wait, updated live, and
   Cancel request (closing the window cancels too; the ticket says so); meanwhile
   self-help offers the organisation's verified fixes for what it finds here
   (:mod:`agent.tk_self_help`): "That fixed it" closes the request;
4. the session, exactly as with a code (:class:`agent.tk_ui.TkUI`: the same
   questions, check code, Stop and rating).

The steps themselves are :mod:`agent.help_request`'s, shared with the console; this
module only draws. Threading as in :mod:`agent.tk_ui`: the request runs in an asyncio
loop on a worker thread, widgets are touched only on the Tk thread
(:class:`HelpScreen`), reached through :meth:`CustomerWindow.post`.

Trusted path: what the relay sends (place, estimate, the technician's name, a
transfer note) arrives inside the agent's own sentences, made inert by
:func:`protocol.safe_text.safe_text`, and is shown in labels; every button here says
the agent's own words.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from agent.help_request import (
    HelpRequestError,
    check_description,
    description_line,
    file_request,
    follow_request,
    place_sentence,
    prepare_request,
    summary_digest,
    summary_lines,
    unknown_category,
)
from agent.i18n import t
from agent.review import ReviewItem
from agent.settings import BakedSettings
from agent.tk_self_help import SelfHelpPanel, ask_fixed, offer_view
from agent.tk_ui import CONNECT_COLOUR, DENY_COLOUR, STOP_COLOUR, TkUI
from protocol.categories import MAX_DESCRIPTION, Category
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    from agent.capabilities.base import ConsentPrompt
    from agent.self_help import Offer
    from agent.tk_ui import CustomerWindow
    from agent.ui import SessionInfo

T = TypeVar("T")

#: The colour of "Get help" (people, and the window tests, find buttons by colour).
HELP_COLOUR = "#00695c"
HINT_COLOUR = "#455a64"
WRAP = 480

#: What the form hands back: the description and the category id; None is Back.
Submission = tuple[str, str] | None


class HelpScreen:
    """The Get help screens in the window's body. Every method runs on the Tk thread."""

    def __init__(self, window: CustomerWindow) -> None:
        self.window = window
        self.tk = window.tk
        self.frame: Any = None
        self.busy = False
        self._place: Any = None
        self._note: Any = None
        self._problem: Any = None
        self._hint: Any = None
        self._self_help: Any = None
        self._form: dict[str, Any] = {}
        #: Self-help's part of the waiting screen (agent.tk_self_help).
        self.self_help = SelfHelpPanel(window, self.self_help_area)

    def offer(self, start: Callable[[], None]) -> None:
        """ "Get help" under the code field."""
        tk = self.tk
        row = tk.Frame(self.window.connect_frame)
        row.pack(fill="x", pady=(6, 0))
        tk.Label(row, text=t("gethelp.no_code"), wraplength=WRAP, justify="left").pack(anchor="w")
        button = self.window._button(row, t("gethelp.button"), HELP_COLOUR, start)
        button.pack(anchor="w", pady=(4, 0))

    def _open(self, heading: str) -> Any:
        """A fresh screen in place of the code field (or of the previous screen)."""
        if self.frame is not None:
            self.frame.destroy()
        self.window.connect_frame.pack_forget()
        frame = self.frame = self.tk.Frame(self.window.body, pady=10)
        frame.pack(fill="both", expand=True)
        self.tk.Label(frame, text=heading, font=("TkDefaultFont", 13, "bold")).pack(anchor="w")
        self._place = self._note = self._problem = self._hint = self._self_help = None
        self.self_help.reset()
        self._form = {}
        return frame

    def _text(self, frame: Any, text: str, **options: Any) -> Any:
        label = self.tk.Label(frame, text=text, wraplength=WRAP, justify="left", **options)
        label.pack(anchor="w", pady=(6, 0))
        return label

    def back(self) -> None:
        """Back to the code field."""
        self.remove()
        self.window.connect_frame.pack(fill="x")

    def remove(self) -> None:
        """Take the screen away (the session's screen replaces it)."""
        if self.frame is not None:
            self.frame.destroy()
            self.frame = None

    def show_loading(self) -> None:
        self._text(self._open(t("gethelp.title")), t("gethelp.loading"))

    def show_problem(self, text: str) -> None:
        """Why help cannot be asked from here (or the session could not start)."""
        frame = self._open(t("gethelp.problem_title"))
        self._text(frame, text, fg=STOP_COLOUR)
        self.window._button(frame, t("gethelp.back"), DENY_COLOUR, self.back).pack(
            anchor="w", pady=(14, 0)
        )

    def show_form(
        self,
        categories: tuple[Category, ...],
        description: str,
        wanted: str | None,
        problem: str,
        submit: Callable[[Submission], None],
    ) -> None:
        """The description (with its count) and the kind of problem; Send request and
        Back. What the customer typed is kept whatever happens (a refusal, Back)."""
        tk = self.tk
        frame = self._open(t("gethelp.title"))
        self._text(frame, t("gethelp.describe"))
        box = tk.Text(frame, height=4, width=56, wrap="word", font=("TkDefaultFont", 11))
        box.insert("1.0", description)
        box.pack(fill="x", pady=(4, 0))
        count = tk.Label(frame, text="")
        count.pack(anchor="e")

        def recount(_: Any = None) -> None:
            box.edit_modified(False)
            typed = len(description_line(box.get("1.0", "end")))
            over = typed > MAX_DESCRIPTION
            count.configure(
                text=t("gethelp.count", count=typed, limit=MAX_DESCRIPTION),
                fg=STOP_COLOUR if over else HINT_COLOUR,
            )

        box.bind("<<Modified>>", recount)
        # Tab leaves the box for the kinds of problem (in a Text it would type a tab).
        box.bind("<Tab>", lambda event: (event.widget.tk_focusNext().focus_set(), "break")[1])
        recount()
        box.focus_set()
        self._text(frame, t("request.categories"))
        ids = [category.id for category in categories]
        chosen = tk.StringVar(value=wanted if wanted in ids else "")
        for category in categories:
            tk.Radiobutton(
                frame,
                text=safe_text(category.title, 80),
                value=category.id,
                variable=chosen,
                anchor="w",
            ).pack(anchor="w", padx=(10, 0))
        self._text(frame, t("gethelp.next"), fg=HINT_COLOUR)
        status = self._text(frame, problem, fg=STOP_COLOUR)
        row = tk.Frame(frame)
        row.pack(fill="x", pady=(10, 0))

        def send() -> None:
            try:
                text = check_description(box.get("1.0", "end"))
            except HelpRequestError as exc:
                status.configure(text=str(exc), fg=STOP_COLOUR)
                return
            if not chosen.get():
                status.configure(text=t("gethelp.choose_kind"), fg=STOP_COLOUR)
                return
            self._enable_form(False, t("request.collecting"))
            submit((text, chosen.get()))

        def back() -> None:
            submit(None)
            self.back()

        send_button = self.window._button(row, t("gethelp.send"), CONNECT_COLOUR, send)
        send_button.pack(side="left")
        back_button = self.window._button(row, t("gethelp.back"), DENY_COLOUR, back)
        back_button.pack(side="left", padx=(10, 0))
        self._form = {"box": box, "status": status, "buttons": (send_button, back_button)}

    def _enable_form(self, enabled: bool, text: str, colour: str = "black") -> None:
        if not self._form:
            return
        state = "normal" if enabled else "disabled"
        self._form["box"].configure(state=state)
        for button in self._form["buttons"]:
            button.configure(state=state)
        self._form["status"].configure(text=text, fg=colour)

    def form_status(self, text: str) -> None:
        self._enable_form(False, text)

    def form_refused(self, text: str) -> None:
        """The relay refused the request: say why, and let the customer try again."""
        self._enable_form(True, text, STOP_COLOUR)

    def show_waiting(self, reference: str, note: str = "") -> None:
        """The place in the queue (updated by :meth:`set_place`) and Cancel request."""
        frame = self._open(t("gethelp.waiting_title"))
        self._text(frame, t("request.filed", request=reference))
        self._place = self._text(
            frame, t("gethelp.waiting_place"), font=("TkDefaultFont", 13, "bold")
        )
        self._note = self._text(frame, note, fg=HINT_COLOUR)
        self._problem = self._text(frame, "", fg=STOP_COLOUR)
        self._hint = self._text(frame, t("gethelp.waiting_hint"))
        for label in (self._note, self._problem):
            self._show_text(label, label.cget("text"))
        cancel: Any = None

        def cancel_request() -> None:
            cancel.configure(state="disabled")
            self.set_place(t("gethelp.cancelling"))
            if self.window.ui is not None:
                self.window.ui.command("end")

        cancel = self.window._button(frame, t("gethelp.cancel"), STOP_COLOUR, cancel_request)
        cancel.pack(anchor="w", pady=(14, 0))

    def set_place(self, text: str) -> None:
        if self._place is not None:
            self._place.configure(text=text)

    def self_help_area(self) -> Any:
        """Where self-help draws in the waiting screen (None if it is not shown)."""
        if self._self_help is None and self._hint is not None:
            self._self_help = self.tk.Frame(self.frame)
            self._self_help.pack(fill="x", before=self._hint)
        return self._self_help

    def set_problem(self, text: str) -> None:
        """Why the relay did not answer this time (``""``: it answers again)."""
        if self._problem is not None:
            self._show_text(self._problem, text)

    def _show_text(self, label: Any, text: str) -> None:
        """``text`` in ``label``, which takes no room while it has none."""
        label.configure(text=text)
        if text:
            label.pack(anchor="w", pady=(6, 0), before=self._hint)
        else:
            label.pack_forget()

    def show_closed(self, text: str) -> None:
        """The request ended without a session (cancelled): say so; Close."""
        frame = self._open(t("gethelp.title"))
        self._text(frame, text)
        self.window._button(frame, t("tk.close"), DENY_COLOUR, self.window.close).pack(
            anchor="w", pady=(14, 0)
        )


def forget_session(window: CustomerWindow) -> None:
    """Take an ended session's screen away (a transfer: the customer waits again for
    the next technician, whose session builds it anew)."""
    frame = getattr(window, "session_frame", None)
    if frame is None:
        return
    children = window.body.winfo_children()
    for child in children[children.index(frame) :]:
        child.destroy()
    for name in ("session_frame", "chat_log", "chat_entry", "allowed_frame", "stop_button"):
        window.__dict__.pop(name, None)


class HelpWindowUI(TkUI):
    """The window's side of a help request: the :class:`RequestWatcher` of
    :func:`agent.help_request.follow_request`, self-help's
    :class:`agent.self_help.SelfHelpPrompter` (drawn by :mod:`agent.tk_self_help`), then
    the session's UI (a TkUI)."""

    def __init__(
        self, window: CustomerWindow, loop: asyncio.AbstractEventLoop, screen: HelpScreen
    ) -> None:
        super().__init__(window, loop)
        self.screen = screen
        self.reference = ""

    def session_started(self, info: SessionInfo) -> None:
        self._window.post(self.screen.remove)
        super().session_started(info)

    def session_ended(self, reason: str) -> None:
        if self.info is None:  # it never started (no technician came, a refusal)
            self._window.post(lambda: self.screen.show_problem(reason))
        else:
            super().session_ended(reason)

    async def review_summary(self, lines: list[str]) -> list[str]:
        """The window's review screen over the summary lines; the lines kept."""
        items = [ReviewItem((number,), line, "") for number, line in enumerate(lines)]
        everything = [item.path for item in items]
        answer: asyncio.Future[list[tuple[str | int, ...]]] = self._loop.create_future()
        intro = t("gethelp.review_intro")
        self._window.post(
            lambda: self._window.review(
                "summary", items, self._resolver(answer, everything), intro=intro
            )
        )
        try:
            struck = await answer
        finally:
            self._window.post(self._window.close_dialog)
        return [line for item, line in zip(items, lines, strict=True) if item.path not in struck]

    def command(self, text: str) -> None:
        # The flow may have just ended (its loop closed) while the thread winds down:
        # the window's close box then only waits for it (session_over) and closes.
        with contextlib.suppress(RuntimeError):
            super().command(text)

    async def wait_for_end(self) -> None:
        """Until the customer leaves: Cancel request, or the window closed."""
        while await self._commands.get() != "end":
            pass

    # RequestWatcher ---------------------------------------------------------------------

    def waiting(self, text: str) -> None:
        self._window.post(lambda: self.screen.set_place(text))

    accepted = waiting

    def transferred(self, text: str) -> None:
        self.info = None

        def wait_again() -> None:
            forget_session(self._window)
            self.screen.show_waiting(self.reference, text)

        self._window.post(wait_again)

    def problem(self, text: str) -> None:
        self._window.post(lambda: self.screen.set_problem(text))

    def closed(self, text: str) -> None:
        self._window.post(lambda: self.screen.show_closed(text))

    def solved(self) -> None:
        self._window.post(lambda: self.screen.show_closed(t("selfhelp.solved")))

    # SelfHelpPrompter (agent.self_help): its questions in this window ----------------------

    async def choose(self, offers: Sequence[Offer]) -> Offer | None:
        views = [offer_view(offer) for offer in offers]
        answer: asyncio.Future[int | None] = self._loop.create_future()
        self._window.post(
            lambda: self.screen.self_help.show_offers(views, self._resolver(answer, None))
        )
        try:
            chosen = await answer
        finally:
            self._window.post(self.screen.self_help.clear_offers)
        return offers[chosen] if chosen is not None else None

    async def confirm_run(self, offer: Offer, prompt: ConsentPrompt) -> bool:
        """The per-run question in the window's consent dialog, as for a technician's
        fix (the script can be read first), headed "You chose to run: ..."."""
        title = safe_text(prompt.title, 200)
        heading = t("selfhelp.you_chose", title=title)
        answer: asyncio.Future[bool] = self._loop.create_future()
        self._window.post(
            lambda: self._window.ask_consent(
                title,
                prompt.description,
                prompt.detail,
                self._resolver(answer, False),
                tuple(prompt.documents),
                heading=heading,
            )
        )
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    async def fixed(self, offer: Offer) -> bool:
        title = safe_text(offer.title, 200)
        answer: asyncio.Future[bool] = self._loop.create_future()
        self._window.post(lambda: ask_fixed(self._window, title, self._resolver(answer, False)))
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    def progress(self, text: str) -> None:
        shown = safe_text(text, 4000, multiline=True)
        self._window.post(lambda: self.screen.self_help.progress(shown))


class _Left(Exception):
    """The customer closed the window before the request was filed."""


async def ask_for_help(
    window: CustomerWindow, screen: HelpScreen, args: argparse.Namespace, baked: BakedSettings
) -> int:
    """The whole Get help flow, in the worker thread's loop; the exit status."""
    from agent.app import CodeLessJoin, run_agent

    loop = asyncio.get_running_loop()
    ui = HelpWindowUI(window, loop, screen)
    window.ui = ui  # closing the window now says "end" to this flow
    org_key = args.org_key or baked
    submissions: asyncio.Queue[Submission] = asyncio.Queue()
    leaving = asyncio.ensure_future(ui.wait_for_end())

    def submit(value: Submission) -> None:
        loop.call_soon_threadsafe(submissions.put_nowait, value)

    async def unless_left(step: Awaitable[T]) -> T:
        task = asyncio.ensure_future(step)
        await asyncio.wait([task, leaving], return_when=asyncio.FIRST_COMPLETED)
        if leaving.done():
            task.cancel()
            raise _Left
        return task.result()

    try:
        window.post(screen.show_loading)
        try:
            prepared = await unless_left(prepare_request(args.relay, args.ca_file, org_key))
        except HelpRequestError as exc:
            refusal = str(exc)
            window.post(lambda: screen.show_problem(refusal))
            return 1
        listing = prepared.categories
        wanted = args.category
        problem = (
            unknown_category(listing, wanted) if wanted and wanted not in listing.ids() else ""
        )
        window.post(
            lambda: screen.show_form(
                listing.categories, args.request or "", wanted, problem, submit
            )
        )
        while True:
            answer = await unless_left(submissions.get())
            if answer is None:
                return 0
            description, category = answer
            lines = await unless_left(asyncio.to_thread(summary_lines))
            kept = await unless_left(ui.review_summary(lines)) if lines else []
            window.post(lambda: screen.form_status(t("gethelp.sending")))
            try:
                # Not cancelled if the window closes meanwhile: a request the relay took
                # is then withdrawn below, so the ticket says the customer left.
                filed = await file_request(prepared, description, category, summary_digest(kept))
                break
            except HelpRequestError as exc:
                window.post(functools.partial(screen.form_refused, str(exc)))
    except _Left:
        return 0
    finally:
        gone = leaving.done() and not leaving.cancelled()
        leaving.cancel()
    ui.reference = str(filed["request_id"])[:8]
    window.post(lambda: screen.show_waiting(ui.reference))
    place = place_sentence(filed)
    if place:
        ui.waiting(place)

    async def left_already() -> None:
        return None

    async def run_session(nameplate: str) -> int:
        return await run_agent(
            args.relay, CodeLessJoin(nameplate), args.log_dir, args.ca_file, org_key, ui
        )

    return await follow_request(
        prepared,
        filed,
        ui,
        left_already if gone else ui.wait_for_end,
        run_session,
        prompter=ui,
        log_dir=args.log_dir,
    )


def get_help(
    args: argparse.Namespace, baked: BakedSettings
) -> Callable[[CustomerWindow, dict[str, int]], None]:
    """What :func:`agent.tk_ui.run_window` calls (``on_open``) to offer Get help."""
    return functools.partial(offer_help, args=args, baked=baked)


def offer_help(
    window: CustomerWindow,
    status: dict[str, int],
    args: argparse.Namespace,
    baked: BakedSettings,
) -> None:
    """Offer "Get help" in ``window`` if this agent pins an organisation key; with
    ``--request TEXT [--category C]`` open the form at once, filled in. An agent
    without a pinned key offers only the code (``--request`` then says to use one).
    The flow's exit status goes in ``status["code"]``."""
    screen = HelpScreen(window)

    def run() -> None:
        try:
            status["code"] = asyncio.run(ask_for_help(window, screen, args, baked))
        finally:
            screen.busy = False
            window.session_over.set()

    def start() -> None:
        if screen.busy or window._running:
            return
        screen.busy = True
        window.session_over.clear()
        threading.Thread(target=run, name="puente-help-request", daemon=True).start()

    pinned = bool(args.org_key or baked.org_public_key)
    if pinned:
        screen.offer(start)
    if getattr(args, "request", None) is not None:
        if pinned:
            window.root.after(100, start)
        else:
            screen.show_problem(t("request.no_org_key"))
