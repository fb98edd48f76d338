#!/bin/sh
# End one process: TERM, wait up to 5 s, then KILL. Refuses the agent itself.
set -u
pid="$PUENTE_PARAM_PID"
case "$pid" in ''|*[!0-9]*) echo "pid must be a number" >&2; exit 2 ;; esac
if [ "$pid" = "$PPID" ] || [ "$pid" = "$$" ]; then
    echo "Refusing to end the remote-support agent itself." >&2; exit 2
fi
alive() {  # running, and not a zombie waiting for its parent to collect it
    state=$(ps -o stat= -p "$1" 2>/dev/null)
    [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}
info=$(ps -o pid= -o user= -o comm= -p "$pid" 2>/dev/null)
if [ -z "$info" ]; then
    echo "No process $pid is running (it may have closed already)."; exit 0
fi
echo "process: $info"
if [ "${PUENTE_DRY_RUN:-0}" = "1" ]; then
    echo "would ask process $pid to close, and force it after 5 seconds"; exit 0
fi
kill -TERM "$pid" 2>&1 || { echo "Could not end process $pid (is it yours?)" >&2; exit 1; }
for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive "$pid" || { echo "process $pid closed"; exit 0; }
    sleep 0.5
done
kill -KILL "$pid" 2>&1
sleep 0.2
if alive "$pid"; then echo "process $pid is still running" >&2; exit 1; fi
echo "process $pid was forced to close"
