"""What asking for help says to the customer that the console did not say before the
window's Get help (:mod:`agent.tk_help`, :mod:`agent.tk_self_help`), in English and
Spanish: the description's checks (:func:`agent.help_request.check_description`, the
console's too) and the window's screens.

Part of the agent's catalogue (:data:`agent.i18n.CATALOG` takes these in), kept apart
so that the Get help screens' sentences are read together; the catalogue's rules apply.
"""

from __future__ import annotations

GET_HELP_WORDS: dict[str, dict[str, str]] = {
    "request.empty": {
        "en": "Describe the problem first, in one sentence.",
        "es": "Describa primero el problema, en una frase.",
    },
    "request.not_plain": {
        "en": "Your description has characters that are not plain text (control characters); type it again in plain words.",
        "es": "Su descripción tiene caracteres que no son texto normal (caracteres de control); escríbala de nuevo con palabras normales.",
    },
    "request.too_long": {
        "en": "Your description has {count} characters; shorten it to {limit} or fewer. The summary of this computer you can attach next carries the details.",
        "es": "Su descripción tiene {count} caracteres; acórtela a {limit} o menos. El resumen de este equipo que puede adjuntar después lleva los detalles.",
    },
    "gethelp.no_code": {
        "en": "No session code? Ask your help desk for help from here:",
        "es": "¿No tiene un código de sesión? Pida ayuda a su servicio técnico desde aquí:",
    },
    "gethelp.button": {"en": "Get help", "es": "Pedir ayuda"},
    "gethelp.title": {
        "en": "Ask your help desk for help",
        "es": "Pedir ayuda a su servicio técnico",
    },
    "gethelp.loading": {
        "en": "Getting your help desk's list of kinds of problem ...",
        "es": "Obteniendo la lista de tipos de problema de su servicio técnico ...",
    },
    "gethelp.describe": {
        "en": "Describe the problem in one sentence:",
        "es": "Describa el problema en una frase:",
    },
    "gethelp.count": {
        "en": "{count} of {limit} characters",
        "es": "{count} de {limit} caracteres",
    },
    "gethelp.choose_kind": {
        "en": "Choose the kind of problem first.",
        "es": "Elija primero el tipo de problema.",
    },
    "gethelp.next": {
        "en": "Next you see the summary of this computer that would go with your request, and choose whether to send it.",
        "es": "Después verá el resumen de este equipo que acompañaría su solicitud y elegirá si lo envía.",
    },
    "gethelp.send": {"en": "Send request", "es": "Enviar solicitud"},
    "gethelp.back": {"en": "Back", "es": "Volver"},
    "gethelp.review_intro": {
        "en": "These facts about this computer would go with your request to your help desk. Untick anything you do not want to send, then press Send. Send nothing sends the request without them.",
        "es": "Estos datos de este equipo acompañarían su solicitud a su servicio técnico. Desmarque lo que no quiera enviar y pulse Enviar. No enviar nada envía la solicitud sin ellos.",
    },
    "gethelp.sending": {
        "en": "Sending your request ...",
        "es": "Enviando su solicitud ...",
    },
    "gethelp.waiting_title": {
        "en": "Waiting for a technician",
        "es": "Esperando a un técnico",
    },
    "gethelp.waiting_place": {
        "en": "Waiting for your place in the queue ...",
        "es": "Esperando su lugar en la cola ...",
    },
    "gethelp.waiting_hint": {
        "en": "A technician from your organisation will connect here. You will see their verified name and a check code, and they can do nothing until you allow it.",
        "es": "Un técnico de su organización se conectará aquí. Verá su nombre verificado y un código de comprobación, y no podrá hacer nada hasta que usted lo permita.",
    },
    "gethelp.cancel": {"en": "Cancel request", "es": "Cancelar solicitud"},
    "gethelp.cancelling": {
        "en": "Cancelling your request ...",
        "es": "Cancelando su solicitud ...",
    },
    "gethelp.try_first": {"en": "Try this first", "es": "Pruebe esto primero"},
    "gethelp.for_problem": {"en": "For: {problem}", "es": "Para: {problem}"},
    "gethelp.try_fix": {"en": "Try this fix", "es": "Probar este arreglo"},
    "gethelp.no_thanks": {
        "en": "No thanks, wait for a technician",
        "es": "No, gracias: esperar a un técnico",
    },
    "gethelp.fixed_title": {"en": "After the fix", "es": "Después del arreglo"},
    "gethelp.fixed_question": {
        "en": 'Did "{title}" fix your problem?',
        "es": '¿"{title}" resolvió su problema?',
    },
    "gethelp.fixed_hint": {
        "en": '"That fixed it" closes your request. "Still broken" keeps your place in the queue.',
        "es": '"Ya está resuelto" cierra su solicitud. "Sigue fallando" conserva su lugar en la cola.',
    },
    "gethelp.fixed_yes": {"en": "That fixed it", "es": "Ya está resuelto"},
    "gethelp.fixed_no": {"en": "Still broken", "es": "Sigue fallando"},
    "gethelp.problem_title": {
        "en": "Could not ask for help",
        "es": "No se pudo pedir ayuda",
    },
}
