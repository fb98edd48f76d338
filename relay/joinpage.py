"""The customer's join page, ``GET /join/{session_id}``: a small static HTML page. Pure.

It tells the customer who is waiting for them, for which ticket, how to get the
agent for their operating system, and the start of their session code. It never
shows the code's secret half: the relay does not know it. The customer types the
full code the technician reads to them.

Every value is escaped with :func:`html.escape`: technician names and ticket ids
come from API callers and must never become markup. The page has no script, no
form and no external resource, and its Content-Security-Policy forbids them.
"""

from __future__ import annotations

import email.utils
import http
from dataclasses import dataclass
from html import escape

from websockets.datastructures import Headers
from websockets.http11 import Response

SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
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
"""


@dataclass(frozen=True)
class JoinView:
    """What the page shows. Every field is untrusted text until escaped."""

    technician: str
    ticket_id: str
    nameplate: str
    expires_at: str  # ISO 8601 UTC
    relay_url: str  # the WebSocket address the agent dials
    download_url: str | None
    visitor_os: str | None  # "windows" | "macos" | "linux" from the User-Agent, if known


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


def render_join_page(view: JoinView) -> str:
    """The page for a waiting session."""
    technician = escape(view.technician)
    ticket = escape(view.ticket_id)
    prefix = escape(view.nameplate) + "-"
    relay = escape(view.relay_url)
    if view.download_url:
        get_agent = (
            f'<p><a href="{escape(view.download_url)}">Download the Puente agent</a> '
            "for your computer, then follow the steps for your system below.</p>"
        )
    else:
        get_agent = (
            "<p>Your help desk will give you the Puente agent (ask your technician if you "
            "do not have it yet), then follow the steps for your system below.</p>"
        )
    systems = {
        "windows": (
            "Windows",
            "Open the downloaded <code>puente-agent.exe</code>. It needs no installation and "
            "no administrator rights.",
        ),
        "macos": (
            "macOS",
            "Open the downloaded Puente agent. If macOS asks, allow it in System Settings, "
            "Privacy &amp; Security.",
        ),
        "linux": (
            "Linux",
            f"Run in a terminal: <code>puente-agent --relay {relay} --console</code>",
        ),
    }
    order = sorted(systems, key=lambda name: name != view.visitor_os)
    steps = "\n".join(
        f'<div class="os{" mine" if name == view.visitor_os else ""}"><h3>{title}'
        f"{' (this computer)' if name == view.visitor_os else ''}</h3><p>{text}</p></div>"
        for name in order
        for title, text in [systems[name]]
    )
    body = f"""
<h1>Your technician is waiting for you</h1>
<p><strong>{technician}</strong> is ready to help you with ticket <strong>{ticket}</strong>.</p>
<h2>1. Get the Puente agent</h2>
{get_agent}
{steps}
<p>If the agent asks for a relay address, use <code>{relay}</code>.</p>
<h2>2. Type your session code</h2>
<p>Your code begins with <span class="code">{prefix}</span></p>
<p>Your technician will read you the whole code on the phone, for example
<span class="code">{prefix}xxx-xxx</span>. Type all of it into the agent.
This page never shows the whole code.</p>
<p>The code works until {escape(view.expires_at)} (UTC) and only once.</p>
<h2>3. You stay in control</h2>
<p>The agent shows your technician's name, the ticket and a check code: your technician
sees the same check code, so read it to them. Nothing happens on your computer until you
allow it, one thing at a time, and you can stop at any moment.</p>
<p class="warn">Only continue if you contacted your help desk yourself. Never type a code
that an unexpected caller gave you.</p>
"""
    return _page("Your technician is waiting - Puente", body)


def render_problem_page(title: str, text: str) -> str:
    """A page saying why there is nothing to join, and what to do."""
    return _page(f"{title} - Puente", f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>\n")


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


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )
