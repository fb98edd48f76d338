"""The OpenAPI 3.1 description of the relay's REST API, served at ``/openapi.json``.

Kept by hand next to :mod:`relay.api`; ``tests/relay/test_rest.py`` checks that
every route the API serves is described here and nothing more.
"""

from __future__ import annotations

from typing import Any

from protocol.summary import SUMMARY_SCHEMA

_ERROR = {"$ref": "#/components/responses/Error"}


def _HTML(description: str) -> dict[str, Any]:  # noqa: N802 - reads like the _ERROR constant
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}

#: What the device APIs say of every device.
_DEVICE: dict[str, Any] = {
    "device_id": {"type": "string"},
    "online": {"type": "boolean"},
    "last_seen": {"type": ["number", "null"]},
    "open_alerts": {"type": "array", "items": {"type": "string"}},
    "alerts": {
        "type": "array",
        "description": "The open alerts in full: the check, its severity, when the alert "
        "opened (seconds since the epoch) and its help-desk ticket (null until filed).",
        "items": {
            "type": "object",
            "properties": {
                "check": {"type": "string"},
                "severity": {"type": "string"},
                "since": {"type": ["number", "null"]},
                "ticket": {"type": ["string", "null"]},
            },
            "required": ["check", "severity", "since", "ticket"],
        },
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Puente relay API",
        "version": "1",
        "description": (
            "Create and manage remote-assistance sessions tied to help-desk tickets. "
            "Every /api route needs 'Authorization: Bearer TOKEN' with a technician's API "
            "token (made with 'puente-relay technician add'). Paths are matched exactly: a "
            "trailing slash is a different, unknown path. Errors are JSON objects "
            '{"error": code, "message": sentence}. The WebSocket endpoint /v1/session '
            "(agent and technician ends) is described in docs/PROTOCOL.md. Help-desk "
            "events (webhook, Request Tracker) are described in docs/HELPDESK.md."
        ),
    },
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {
                "summary": "Liveness check",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The relay is serving.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "ok"}},
                                    "required": ["status"],
                                }
                            }
                        },
                    },
                    "503": {
                        "description": "The relay is draining before it stops (error "
                        "'draining'); load balancers should send new sessions elsewhere.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this relay node (text exposition format)",
                "description": (
                    "Denied by default: served to clients on the relay's own machine that "
                    "connect directly, or to anyone sending the metrics token "
                    "(PUENTE_METRICS_TOKEN) as 'Authorization: Bearer TOKEN' when one is set. "
                    "A technician's API token is not the metrics token."
                ),
                "security": [{}, {"bearer": []}],
                "responses": {
                    "200": {
                        "description": "puente_* metrics (see docs/deploy.md).",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                    },
                    "401": _ERROR,
                    "403": _ERROR,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI description of the API."}},
            }
        },
        "/join/{session_id}": {
            "get": {
                "summary": "The customer's join page (HTML)",
                "description": (
                    "Who is waiting, for which ticket, how to get the agent, and the first "
                    "part of the session code. Never the code's secret part: the relay does "
                    "not know it. The address is the session's random id (the join_url of "
                    "a session), never its nameplate. Rate-limited per client address."
                ),
                "security": [],
                "parameters": [_SESSION_ID],
                "responses": {
                    "200": _HTML("The page for a waiting session."),
                    "400": _ERROR,
                    "404": {
                        "description": "No session has this id (a page), or the path "
                        "is not a join link at all (a JSON error).",
                        "content": {
                            "text/html": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                        },
                    },
                    "410": _HTML("The session's code expired or was used."),
                    "429": _HTML("Too many join pages opened from this address; wait a minute."),
                },
            }
        },
        "/join/{session_id}/agent/{system}": {
            "get": {
                "summary": "The organisation's one-file agent for a waiting session",
                "description": (
                    "Streamed, named puente-agent-NAMEPLATE (.exe on Windows; never the "
                    "secret). One Range is honoured (206; 416 past the end); ETag and "
                    "If-Range let a download resume. Only while the session waits. Rate-"
                    "limited per client address; all downloads share the relay's "
                    "--download-rate."
                ),
                "security": [],
                "parameters": [
                    _SESSION_ID,
                    {
                        "name": "system",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["windows", "macos", "linux"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The whole agent.",
                        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                    },
                    "206": {
                        "description": "The requested range.",
                        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                    },
                    "404": _ERROR,
                    "410": _ERROR,
                    "416": _ERROR,
                    "429": _ERROR,
                },
            }
        },
        "/api/sessions": {
            "post": {
                "summary": "Create a session for a ticket and get its nameplate",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewSession"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "The session, waiting for both ends to claim the nameplate.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Session"}}
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                    "429": _ERROR,  # past the sessions per minute of this token (Retry-After)
                },
            },
            "get": {
                "summary": "List the caller's sessions, newest first",
                "parameters": [
                    {
                        "name": "ticket_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Only the sessions of this ticket.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Up to 100 sessions.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "sessions": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Session"},
                                        }
                                    },
                                    "required": ["sessions"],
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                },
            },
        },
        "/api/sessions/{session_id}": {
            "parameters": [_SESSION_ID],
            "get": {
                "summary": "One of the caller's sessions",
                "responses": {
                    "200": {
                        "description": "The session.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Session"}}
                        },
                    },
                    "401": _ERROR,
                    "404": _ERROR,
                },
            },
            "delete": {
                "summary": "End a session; any connected ends are disconnected",
                "responses": {
                    "200": {
                        "description": "The session, now ended (or as it was if already over).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Session"}}
                        },
                    },
                    "401": _ERROR,
                    "404": _ERROR,
                },
            },
        },
        "/api/sessions/{session_id}/summary": {
            "parameters": [_SESSION_ID],
            "get": {
                "summary": "The session's summary",
                "responses": {
                    "200": {
                        "description": "The summary as uploaded.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Summary"}}
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "404": _ERROR,
                },
            },
            "put": {
                "summary": "Upload the session's summary (once; it never changes)",
                "description": (
                    "Written by the technician's client at the end of a session. The first "
                    "upload is stored and sent to the help desk; the same summary again is "
                    "200 (safe to retry); a different one is 409."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Summary"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "This summary was already stored.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Summary"}}
                        },
                    },
                    "201": {
                        "description": "Stored; the help desk will receive it.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Summary"}}
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "404": _ERROR,
                    "409": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                },
            },
        },
        "/api/devices": {
            "get": {
                "summary": "Enrolled devices: online or not, and their open alerts",
                "description": (
                    "Online means connected to this relay, or to another node of its "
                    "cluster (as of that node's last presence pass, every 5 s). Alerts name "
                    "only the failing checks; what a check found reaches the relay only "
                    "sealed to the organisation's details key (GET /api/devices/{device_id})."
                ),
                "responses": {
                    "200": {
                        "description": "Every device enrolled at this relay.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "devices": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": _DEVICE,
                                                "required": list(_DEVICE),
                                            },
                                        }
                                    },
                                    "required": ["devices"],
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                },
            }
        },
        "/api/devices/{device_id}": {
            "parameters": [
                {
                    "name": "device_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "summary": "One enrolled device, with its checks' sealed details",
                "description": (
                    "As in GET /api/devices, plus each check's latest details as the device "
                    "sealed them (HPKE) to the organisation's details key, which the relay "
                    "cannot open ('puente-tech devices show DEVICE --details-key' does), the "
                    "tickets of its open alerts, and its signed policy (null: the default)."
                ),
                "responses": {
                    "200": {
                        "description": "The device.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        **_DEVICE,
                                        "details": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "check": {"type": "string"},
                                                    "at": {"type": "integer"},
                                                    "status": {"type": "string"},
                                                    "sealed": {"type": "string"},
                                                },
                                                "required": ["check", "at", "status", "sealed"],
                                            },
                                        },
                                        "tickets": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "policy": {"type": ["string", "null"]},
                                    },
                                    "required": [*_DEVICE, "details", "tickets", "policy"],
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "404": _ERROR,
                },
            },
        },
        "/api/devices/{device_id}/connect": {
            "parameters": [
                {
                    "name": "device_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                }
            ],
            "post": {
                "summary": "Ask an enrolled device for an unattended session",
                "description": (
                    "Create a session for the ticket first (POST /api/sessions). The relay "
                    "tells the online device that session's nameplate and ticket, nothing "
                    "else; the device pairs without a code, checks the technician's "
                    "certificate and role itself, and its owner's policy decides."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "session_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}
                                },
                                "required": ["session_id"],
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "The device was told; claim the nameplate code-less.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "device_id": {"type": "string"},
                                        "session_id": {"type": "string"},
                                        "nameplate": {"type": "string"},
                                        "device_key": {"type": "string"},
                                        "unattended": {"type": "object"},
                                    },
                                    "required": [
                                        "device_id",
                                        "session_id",
                                        "nameplate",
                                        "device_key",
                                        "unattended",
                                    ],
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "404": _ERROR,
                    "409": _ERROR,
                },
            },
        },
        "/api/revocations": {
            "post": {
                "summary": "Publish an organisation's signed revocation list",
                "description": (
                    "The body is the list exactly as 'puente-tech org revoke' wrote it. The relay "
                    "checks that it is signed by the key it names and keeps it if its number is "
                    "higher than the kept one's. The relay cannot forge or edit a list: agents "
                    "verify it against their pinned organisation key."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/RevocationList"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The list is published.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "organisation_key": {"type": "string"},
                                        "number": {"type": "integer"},
                                        "revoked": {"type": "integer"},
                                    },
                                    "required": ["organisation_key", "number", "revoked"],
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "409": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                    "501": _ERROR,
                },
            }
        },
        "/revocations/{organisation_key}": {
            "parameters": [
                {
                    "name": "organisation_key",
                    "in": "path",
                    "required": True,
                    "description": "SHA-256 of the organisation's raw Ed25519 public key, hex.",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                }
            ],
            "get": {
                "summary": "The newest revocation list of an organisation (agents fetch it)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The signed list.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RevocationList"}
                            }
                        },
                    },
                    "400": _ERROR,
                    "404": _ERROR,
                    "501": _ERROR,
                },
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": {
                "description": "The request was refused.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        },
        "schemas": {
            "NewSession": {
                "type": "object",
                "properties": {
                    "ticket_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": "^[!-~]([ -~]*[!-~])?$",
                        "description": "The help desk's ticket reference: printable characters, "
                        "not only spaces (the pattern shows the ASCII subset; other printable "
                        "Unicode is accepted too).",
                    },
                    "ticket_url": {
                        "type": ["string", "null"],
                        "maxLength": 2000,
                        "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$",
                        "description": "An http or https link to the ticket.",
                    },
                },
                "required": ["ticket_id"],
                "additionalProperties": False,
            },
            "Session": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "nameplate": {"type": "string", "pattern": "^[0-9]{3,9}$"},
                    "ticket_id": {"type": "string"},
                    "ticket_url": {"type": ["string", "null"]},
                    "technician": {"type": "string"},
                    "state": {
                        "type": "string",
                        "enum": ["waiting", "paired", "ended", "expired", "failed"],
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "paired_at": {"type": ["string", "null"], "format": "date-time"},
                    "ended_at": {"type": ["string", "null"], "format": "date-time"},
                    "end_reason": {"type": ["string", "null"]},
                    "bytes_agent_to_tech": {"type": "integer"},
                    "bytes_tech_to_agent": {"type": "integer"},
                    "join_url": {"type": "string"},
                    "summary": {
                        "oneOf": [{"$ref": "#/components/schemas/Summary"}, {"type": "null"}]
                    },
                    "summary_uploaded_at": {"type": ["string", "null"], "format": "date-time"},
                },
                "required": [
                    "session_id",
                    "nameplate",
                    "ticket_id",
                    "ticket_url",
                    "technician",
                    "state",
                    "created_at",
                    "expires_at",
                    "join_url",
                    "summary",
                ],
            },
            "Summary": SUMMARY_SCHEMA,
            "RevocationList": {
                "type": "object",
                "description": "Signed by the organisation key; see docs/PROTOCOL.md.",
                "properties": {
                    "revocations": {"type": "object"},
                    "signature": {"type": "string", "contentEncoding": "base64"},
                },
                "required": ["revocations", "signature"],
                "additionalProperties": False,
            },
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                "required": ["error", "message"],
            },
        },
    },
}

_REQUEST_ID = {
    "name": "request_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}

_OBJECT = {"type": "object"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or _OBJECT}},
    }


_HELP_STATUS = {
    "type": "object",
    "description": "A help request as its customer sees it.",
    "properties": {
        "request_id": {"type": "string"},
        "state": {"enum": ["waiting", "offered", "accepted", "withdrawn", "solved"]},
        "version": {"type": "integer"},
        "position": {"type": ["integer", "null"]},
        "estimated_wait_seconds": {"type": ["integer", "null"]},
        "technician": {"type": ["string", "null"]},
        "nameplate": {"type": ["string", "null"]},
        "note": {"type": ["string", "null"]},
    },
    "required": ["request_id", "state", "version"],
}

_CUSTOMER_AUTH = {
    "name": "Authorization",
    "in": "header",
    "required": True,
    "description": "'Bearer TOKEN' with the token returned when the request was filed.",
    "schema": {"type": "string"},
}

HELP_PATHS: dict[str, Any] = {
    "/help/categories/{organisation_key}": {
        # The same path parameter as /revocations/{organisation_key}.
        "parameters": OPENAPI["paths"]["/revocations/{organisation_key}"]["parameters"],
        "get": {
            "summary": "The organisation's signed list of help categories (agents fetch it)",
            "description": "Agents verify it against their pinned organisation key.",
            "security": [],
            "responses": {
                "200": _json("The signed list ('puente-tech org categories')."),
                "400": _ERROR,
                "404": _ERROR,
            },
        },
    },
    "/help/requests": {
        "post": {
            "summary": "A customer's agent asks for help (no account: it pins the organisation)",
            "description": (
                "Files a help request; the relay opens a ticket through its help-desk "
                "connectors and routes the request to a technician with the skills. The answer "
                "carries a token: the only way to follow or withdraw the request. Refusals: "
                "no_pinned_key, unknown_category, description_too_long (400), "
                "unknown_organisation (404), rate_limited (429, per address and organisation)."
            ),
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "organisation_key": {"type": "string"},
                                "description": {"type": "string", "maxLength": 500},
                                "category": {"type": "string"},
                                "language": {"enum": ["en", "es"]},
                                "diagnostics_digest": {"type": "string", "maxLength": 2000},
                            },
                            "required": ["organisation_key", "description", "category"],
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "201": _json("Filed; the body adds 'token' to the request's status.", _HELP_STATUS),
                "400": _ERROR,
                "404": _ERROR,
                "415": _ERROR,
                "429": _ERROR,
            },
        }
    },
    "/help/requests/{request_id}": {
        "parameters": [_REQUEST_ID, _CUSTOMER_AUTH],
        "get": {
            "summary": "Follow a help request: position, estimated wait, then the session",
            "description": (
                "With ?after=VERSION the answer is held (up to 25 s) until the request's "
                "version differs, or (with &position=P) its place in the queue is not P: a "
                "long-poll, so the agent shows changes as they happen."
            ),
            "security": [],
            "parameters": [
                {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"}},
                {
                    "name": "position",
                    "in": "query",
                    "required": False,
                    "description": "With after: also answer when the place is not this one.",
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {
                "200": _json("The request's status.", _HELP_STATUS),
                "400": _ERROR,
                "404": _ERROR,
            },
        },
        "delete": {
            "summary": "Withdraw a help request (the customer closed the agent while waiting)",
            "security": [],
            "responses": {"200": _json("Withdrawn.", _HELP_STATUS), "400": _ERROR, "404": _ERROR},
        },
    },
    "/api/queue": {
        "get": {
            "summary": "Your routing profile and the help requests waiting",
            "description": "Each request carries its description, category, language, "
            "created_at, whether it is offered to you, and its place in the queue as its "
            "customer sees it: position and estimated_wait_seconds (null once taken).",
            "responses": {"200": _json("Profile and requests."), "401": _ERROR, "403": _ERROR},
        }
    },
    "/api/availability": {
        "put": {
            "summary": "Say whether you take help requests (busy is automatic at capacity)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"availability": {"enum": ["available", "busy", "away"]}},
                            "required": ["availability"],
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json("Your profile."),
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "415": _ERROR,
            },
        }
    },
}

for _action, _summary in (
    ("accept", "Take a help request: creates its session (409 if someone else took it)"),
    ("decline", "Pass a help request offered to you on to the next technician"),
    ("transfer", "Hand a request you took to a technician or queue, with a note"),
):
    HELP_PATHS[f"/api/queue/{{request_id}}/{_action}"] = {
        "parameters": [_REQUEST_ID],
        "post": {
            "summary": _summary,
            "requestBody": {
                "required": _action == "transfer",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"to": {"type": "string"}, "note": {"type": "string"}},
                            "required": ["to", "note"],
                            "additionalProperties": False,
                        }
                        if _action == "transfer"
                        else {"type": "object", "maxProperties": 0}
                    }
                },
            },
            "responses": {
                "200": _json("Done."),
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
                "415": _ERROR,
            },
        },
    }

OPENAPI["paths"].update(HELP_PATHS)

# Self-help and past cases (relay.self_help) -------------------------------------------------

_PAST_CASES = {
    "type": "object",
    "description": "Solved and runs per problem and fix ({problem: {fix: {solved, runs}}}), "
    "overall and per category; both triage rankings read them.",
    "properties": {"problems": _OBJECT, "categories": _OBJECT},
    "required": ["problems", "categories"],
}
_FIX_RUN = {
    "fix": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,63}$"},
    "version": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$"},
    "exit_status": {"type": ["integer", "null"]},
}
_PROBLEM = {"type": "string", "pattern": "^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$"}


def _body(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": sorted(properties),
                    "additionalProperties": False,
                }
            }
        },
    }


SELF_HELP_PATHS: dict[str, Any] = {
    "/help/requests/{request_id}/self-help": {
        "parameters": [_REQUEST_ID, _CUSTOMER_AUTH],
        "get": {
            "summary": "What the organisation published for self-help (the waiting customer's agent)",
            "description": (
                "The signed fix bundles (base64) and rule book the organisation published "
                "('puente-relay fixes publish'), with the past cases of its fixes. The relay "
                "vouches for nothing: agents verify every bundle and the rule book against "
                "their pinned organisation key and never offer what fails. 409 once the "
                "request no longer waits."
            ),
            "security": [],
            "responses": {
                "200": _json(
                    "Fixes, rules and past cases.",
                    {
                        "type": "object",
                        "properties": {
                            "fixes": {"type": "array", "items": _OBJECT},
                            "rules": {"type": ["string", "null"]},
                            "past_cases": _PAST_CASES,
                            "category": {"type": "string"},
                        },
                        "required": ["fixes", "rules", "past_cases", "category"],
                    },
                ),
                "400": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
            },
        },
    },
    "/help/requests/{request_id}/outcomes": {
        "parameters": [_REQUEST_ID, _CUSTOMER_AUTH],
        "post": {
            "summary": "A self-help run ended: record it; 'fixed' closes the request as solved",
            "description": (
                "fixed=true: the request is solved, the ticket gets the outcome and is "
                "resolved, no technician involved. fixed=false: the customer keeps their "
                "place. Only fixes published for the organisation, at most 5 per request "
                "(429), only while it waits (409)."
            ),
            "security": [],
            "requestBody": _body({**_FIX_RUN, "problem": _PROBLEM, "fixed": {"type": "boolean"}}),
            "responses": {
                "201": _json("Recorded; the request's status.", _HELP_STATUS),
                "400": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
                "415": _ERROR,
                "429": _ERROR,
            },
        },
    },
    "/api/outcomes": {
        "get": {
            "summary": "Past cases: how every fix run ended, per problem, fix and category",
            "responses": {"200": _json("The figures.", _PAST_CASES), "401": _ERROR},
        },
        "post": {
            "summary": "Record a fix run of one of your sessions, for the problems triage found",
            "description": "Solved when it exited with status 0, until a recheck says the "
            "problem is still there. An empty problems list records the run without one.",
            "requestBody": _body(
                {
                    **_FIX_RUN,
                    "session_id": _SESSION_ID["schema"],
                    "problems": {"type": "array", "items": _PROBLEM, "maxItems": 20},
                }
            ),
            "responses": {
                "201": _json("Recorded."),
                "400": _ERROR,
                "401": _ERROR,
                "404": _ERROR,
                "415": _ERROR,
                "429": _ERROR,
            },
        },
    },
    "/api/outcomes/recheck": {
        "post": {
            "summary": "A later triage in your session still finds these problems",
            "description": "The session's runs for them did not solve them.",
            "requestBody": _body(
                {
                    "session_id": _SESSION_ID["schema"],
                    "present": {"type": "array", "items": _PROBLEM, "maxItems": 20},
                }
            ),
            "responses": {
                "200": _json("How many runs changed."),
                "400": _ERROR,
                "401": _ERROR,
                "404": _ERROR,
                "415": _ERROR,
            },
        }
    },
}

OPENAPI["paths"].update(SELF_HELP_PATHS)
