"""The customer's join page, ``GET /join/{session_id}``: a small static HTML page. Pure.

It tells the customer who is waiting for them, for which ticket, offers the agent for
their operating system first (the others one click away, each with its size and
SHA-256), shows in three steps with pictures what the agent will show, says what to do
when the system blocks the file, and gives the start of their session code. English or
Spanish, from ``Accept-Language`` or the page's own switch (``?lang=``), with the
agent's own words (:mod:`protocol.customer_words`). It never
shows the code's secret half: the relay does not know it. The customer types the
full code the technician reads to them.

Every value is escaped with :func:`html.escape`: technician names and ticket ids
come from API callers and must never become markup. The page has no script, no
form and no external resource (its pictures come from the relay), and its
Content-Security-Policy forbids them.
"""

from __future__ import annotations

import email.utils
import http
from dataclasses import dataclass
from html import escape

from websockets.datastructures import Headers
from websockets.http11 import Response

from protocol.customer_words import LANGUAGES, words

SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #1b1b1b; }
h1 { font-size: 1.6em; }
.code { font-family: ui-monospace, monospace; font-size: 1.4em; letter-spacing: 0.1em; }
code { background: #f1f1f1; padding: 0.1em 0.3em; word-break: break-all; }
.os { border-left: 4px solid #ccc; padding-left: 1em; margin: 1em 0; }
.mine { border-color: #2a7ae2; }
.warn { background: #fff4e0; padding: 0.6em 1em; }
.lang { text-align: right; }
a.download { display: inline-block; background: #2a7ae2; color: #fff; padding: 0.6em 1.2em;
             border-radius: 6px; text-decoration: none; font-weight: bold; }
.facts { font-size: 0.85em; color: #444; }
figure { margin: 0.5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #ccc; }
details { margin: 1em 0; }
"""


@dataclass(frozen=True)
class OfferedDownload:
    """One agent the page offers (:class:`relay.downloads.AgentDownload`, for this session)."""

    system: str  # "windows" | "macos" | "linux"
    url: str
    file_name: str  # puente-agent-NAMEPLATE(.exe): what the browser saves
    size: int
    sha256: str


@dataclass(frozen=True)
class JoinView:
    """What the page shows. Every field is untrusted text until escaped."""

    technician: str
    ticket_id: str
    nameplate: str
    expires_at: str  # ISO 8601 UTC
    relay_url: str  # the WebSocket address the agent dials
    download_url: str | None  # an outside download page, when the relay serves no agents
    visitor_os: str | None  # "windows" | "macos" | "linux" from the User-Agent, if known
    downloads: tuple[OfferedDownload, ...] = ()
    language: str = "en"


SYSTEM_NAMES = {"windows": "Windows", "macos": "macOS", "linux": "Linux"}


def visitor_os(user_agent: str | None) -> str | None:
    """The visitor's operating system guessed from ``User-Agent`` (to show its steps first)."""
    agent = (user_agent or "").lower()
    if "windows" in agent:
        return "windows"
    if "mac os" in agent or "macintosh" in agent:
        return "macos"
    if "linux" in agent and "android" not in agent:
        return "linux"
    return None


def page_language(accept_language: str | None, chosen: str | None = None) -> str:
    """``en`` or ``es``: ``chosen`` (the page's switch, ``?lang=``) if it is one of them,
    else the first of them the browser's ``Accept-Language`` prefers, else English."""
    if chosen in LANGUAGES:
        return chosen
    best, best_q = LANGUAGES[0], 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        base = tag.strip().lower().partition("-")[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # Earlier entries win ties: subtract a hair per position.
        score = q - position * 1e-6
        if base in LANGUAGES and q > 0 and score > best_q:
            best, best_q = base, score
    return best


def render_join_page(view: JoinView) -> str:
    """The page for a waiting session, in ``view.language``."""
    say = words(view.language)
    prefix = escape(view.nameplate) + "-"
    other = "es" if view.language == "en" else "en"
    first_os = view.visitor_os or (view.downloads[0].system if view.downloads else None)
    offered = sorted(view.downloads, key=lambda d: d.system != first_os)
    if offered:
        mine, *others = offered
        get_agent = _offer(mine, say, mine.system == view.visitor_os, "mine")
        if others:
            get_agent += (
                f"\n<details><summary>{escape(say['join.other_systems'])}</summary>\n"
                + "\n".join(_offer(d, say, False, "") for d in others)
                + "\n</details>"
            )
        name = offered[0].file_name
    elif view.download_url:
        get_agent = (
            f'<p><a class="download" href="{escape(view.download_url)}">'
            f"{escape(say['join.step_download'][3:])}</a></p>"
        )
        name = f"puente-agent-{view.nameplate}"
    else:
        get_agent = f"<p>{escape(say['join.no_downloads'])}</p>"
        name = f"puente-agent-{view.nameplate}"
    systems = sorted(SYSTEM_NAMES, key=lambda system: system != view.visitor_os)
    blocked = "\n".join(
        f'<li class="os{" mine" if system == view.visitor_os else ""}">'
        + escape(say[f"join.blocked_{system}"].format(name=name))
        + (
            f" <strong>{escape(say['join.this_computer'])}</strong>"
            if system == view.visitor_os
            else ""
        )
        + "</li>"
        for system in systems
    )
    who = escape(say["join.who"]).format(
        technician=f"<strong>{escape(view.technician)}</strong>",
        ticket=f"<strong>{escape(view.ticket_id)}</strong>",
    )
    opening = escape(say["join.open_text"]).format(
        title=escape(say["app.title"]),
        label=escape(say["tk.digits_label"].format(nameplate=view.nameplate)),
        connect=escape(say["tk.connect"]),
    )
    checking = escape(say["join.check_text"]).format(
        sas=escape(say["tk.sas"].format(sas="...")),
        hint=escape(say["tk.sas_hint"]),
        stop=escape(say["tk.stop_all"]),
    )
    body = f"""
<p class="lang"><a href="?lang={other}" hreflang="{other}" lang="{other}">{escape(say["join.switch"])}</a></p>
<h1>{escape(say["join.heading"])}</h1>
<p>{who}</p>
<h2>{escape(say["join.step_download"])}</h2>
{get_agent}
<p>{escape(say["join.no_install"]).format(prefix=f'<span class="code">{prefix}</span>')}</p>
<h2>{escape(say["join.step_open"])}</h2>
<figure><img src="/join/assets/agent-digits-{view.language}.png" width="480"
 alt="{escape(say["join.picture_open"])}"></figure>
<p>{opening}</p>
<h2>{escape(say["join.step_check"])}</h2>
<figure><img src="/join/assets/agent-session-{view.language}.png" width="480"
 alt="{escape(say["join.picture_check"])}"></figure>
<p>{checking}</p>
<h2>{escape(say["join.blocked_heading"])}</h2>
<ul class="blocked">
{blocked}
</ul>
<p>{escape(say["join.relay"]).format(relay=f"<code>{escape(view.relay_url)}</code>")}</p>
<p>{escape(say["join.expires"].format(time=view.expires_at))}</p>
<p class="warn">{escape(say["join.warning"])}</p>
"""
    return _page(say["join.page_title"], body, view.language)


def _offer(download: OfferedDownload, say: dict[str, str], here: bool, css: str) -> str:
    """One download: its button, then its file name, size and SHA-256."""
    system = SYSTEM_NAMES[download.system]
    label = escape(say["join.download"].format(system=system))
    if here:
        label += " " + escape(say["join.this_computer"])
    facts = escape(say["join.file_facts"]).format(
        name=f'<code class="name">{escape(download.file_name)}</code>',
        size=f"{download.size / 1e6:.1f}",
        sha256=f'<code class="sha256">{escape(download.sha256)}</code>',
    )
    return (
        f'<div class="os {css}" data-os="{escape(download.system)}">'
        f'<p><a class="download" href="{escape(download.url)}" '
        f'download="{escape(download.file_name)}">{label}</a></p>'
        f'<p class="facts">{facts}</p></div>'
    )


def render_problem_page(problem: str, language: str = "en") -> str:
    """A page saying why there is nothing to join, and what to do: ``problem`` is
    ``too_many``, ``unknown`` or ``gone`` (``join.PROBLEM.*`` in the customer words)."""
    say = words(language)
    title, text = say[f"join.{problem}.title"], say[f"join.{problem}.text"]
    body = f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>\n"
    return _page(f"{title} - Puente", body, language)


def html_response(
    status: http.HTTPStatus, page: str, extra_headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """A complete HTML response with the page's security headers."""
    body = page.encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *SECURITY_HEADERS,
            *extra_headers,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _page(title: str, body: str, language: str = "en") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )
