"""What self-help (:mod:`agent.self_help`) says to the customer, in English and Spanish.

Part of the agent's catalogue (:data:`agent.i18n.CATALOG` takes these in), kept apart
so that self-help's sentences are read together; the catalogue's rules apply.
``selfhelp.problem.ID`` says a built-in rule's problem in the customer's words (a
problem of the organisation's own rule book is shown with the rule's title).
"""

from __future__ import annotations

SELF_HELP_WORDS: dict[str, dict[str, str]] = {
    "selfhelp.looking": {
        "en": "While you wait, Puente checks this computer for problems your help desk "
        "has fixes for (nothing leaves this computer)...",
        "es": "Mientras espera, Puente busca en este equipo problemas para los que su "
        "servicio técnico tiene arreglos (nada sale de este equipo)...",
    },
    "selfhelp.unreachable": {
        "en": "The help desk's fixes could not be fetched (the relay did not answer), so "
        "there is nothing to try yourself; your request is filed and keeps its place.",
        "es": "No se pudieron obtener los arreglos del servicio técnico (el relé no "
        "respondió), así que no hay nada que probar por su cuenta; su solicitud está "
        "registrada y conserva su lugar.",
    },
    "selfhelp.unavailable": {
        "en": "Your help desk's fixes are not available right now ({detail}); your request "
        "keeps its place in the queue.",
        "es": "Los arreglos de su servicio técnico no están disponibles ahora ({detail}); "
        "su solicitud conserva su lugar en la cola.",
    },
    "selfhelp.rules_refused": {
        "en": "The list of known problems from the relay was not signed by your "
        "organisation, so it was not used; Puente's own list still is.",
        "es": "La lista de problemas conocidos que envió el relé no está firmada por su "
        "organización, así que no se usó; la lista propia de Puente sí.",
    },
    "selfhelp.nothing": {
        "en": "No problem with a ready fix was found; a technician will help you.",
        "es": "No se encontró ningún problema con un arreglo listo; un técnico le ayudará.",
    },
    "selfhelp.offers_intro": {
        "en": "Your help desk has fixes for what was found here. You can try one yourself "
        "now; your place in the queue is kept either way.",
        "es": "Su servicio técnico tiene arreglos para lo que se encontró aquí. Puede "
        "probar uno usted mismo ahora; conserva su lugar en la cola en cualquier caso.",
    },
    "selfhelp.offer": {
        "en": "  {number}. {title} (for: {problem})",
        "es": "  {number}. {title} (para: {problem})",
    },
    "selfhelp.record": {
        "en": "solved {solved} of {runs} past cases",
        "es": "resolvió {solved} de {runs} casos anteriores",
    },
    "selfhelp.no_record": {
        "en": "not tried before",
        "es": "no se ha probado antes",
    },
    "selfhelp.choose_prompt": {
        "en": "Type the number of a fix to try it (1 to {last}), or press Enter to wait "
        "for a technician: ",
        "es": "Escriba el número de un arreglo para probarlo (1 a {last}), o pulse Intro "
        "para esperar a un técnico: ",
    },
    "selfhelp.choose_again": {
        "en": "Please type a number from 1 to {last}, or just press Enter to wait.",
        "es": "Escriba un número del 1 al {last}, o pulse Intro para esperar.",
    },
    "selfhelp.you_chose": {
        "en": "You chose to run: {title}",
        "es": "Ha elegido ejecutar: {title}",
    },
    "selfhelp.not_run": {
        "en": "{title} was not run.",
        "es": "{title} no se ejecutó.",
    },
    "selfhelp.could_not_run": {
        "en": "The fix could not run: {detail}",
        "es": "El arreglo no se pudo ejecutar: {detail}",
    },
    "selfhelp.failed": {
        "en": "{title} did not finish successfully. Nothing else was changed by Puente; "
        "your place in the queue is kept.",
        "es": "{title} no terminó correctamente. Puente no cambió nada más; conserva su "
        "lugar en la cola.",
    },
    "selfhelp.undo_skipped": {
        "en": "The fix's undo was not run.",
        "es": "No se ejecutó la acción de deshacer del arreglo.",
    },
    "selfhelp.fixed_question": {
        "en": 'Did "{title}" fix your problem? Type y for "That fixed it" (your request '
        'is closed), or n for "Still broken" (you keep your place): ',
        "es": '¿"{title}" resolvió su problema? Escriba s para "Ya está resuelto" (se '
        'cierra su solicitud), o n para "Sigue fallando" (conserva su lugar): ',
    },
    "selfhelp.solved": {
        "en": "Glad it is fixed. Your request is closed and your help desk has been told "
        "what fixed it.",
        "es": "Nos alegra que esté resuelto. Su solicitud se ha cerrado y su servicio "
        "técnico sabe qué lo resolvió.",
    },
    "selfhelp.place_kept": {
        "en": "Sorry it is still broken. You keep your place in the queue; a technician "
        "will help you.",
        "es": "Lamentamos que siga fallando. Conserva su lugar en la cola; un técnico le ayudará.",
    },
    "selfhelp.waiting": {
        "en": "All right: you keep your place in the queue.",
        "es": "De acuerdo: conserva su lugar en la cola.",
    },
    "selfhelp.not_reported": {
        "en": "The help desk could not be told how the fix went; your request stays in "
        "the queue, so a technician can check.",
        "es": "No se pudo informar al servicio técnico de cómo fue el arreglo; su solicitud "
        "sigue en la cola para que un técnico lo compruebe.",
    },
    "selfhelp.taken": {
        "en": "A technician has already taken your request; tell them what you tried.",
        "es": "Un técnico ya ha tomado su solicitud; cuéntele lo que ha probado.",
    },
    # The built-in rules' problems (protocol/rules/default.toml), in the customer's words.
    "selfhelp.problem.disk-nearly-full": {
        "en": "a disk is nearly full",
        "es": "un disco está casi lleno",
    },
    "selfhelp.problem.dns-failing": {
        "en": "internet names do not resolve (DNS)",
        "es": "los nombres de internet no se resuelven (DNS)",
    },
    "selfhelp.problem.network-down": {
        "en": "there is no working network connection",
        "es": "no hay ninguna conexión de red que funcione",
    },
    "selfhelp.problem.clock-skewed": {
        "en": "the clock is wrong",
        "es": "el reloj está mal",
    },
    "selfhelp.problem.clock-unsynchronised": {
        "en": "the clock is not kept in time automatically",
        "es": "el reloj no se sincroniza automáticamente",
    },
    "selfhelp.problem.runaway-process": {
        "en": "a program is using most of the processor",
        "es": "un programa está usando casi todo el procesador",
    },
    "selfhelp.problem.memory-hog": {
        "en": "a program is using most of the memory",
        "es": "un programa está usando casi toda la memoria",
    },
    "selfhelp.problem.memory-pressure": {
        "en": "memory is nearly exhausted",
        "es": "la memoria está casi agotada",
    },
    "selfhelp.problem.pending-reboot": {
        "en": "a restart is pending",
        "es": "hay un reinicio pendiente",
    },
}
