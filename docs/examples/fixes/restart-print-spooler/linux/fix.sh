#!/bin/sh
# Restart CUPS with whatever service manager this system uses.
set -u
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files cups.service >/dev/null 2>&1; then
    systemctl restart cups.service && systemctl is-active cups.service && exit 0
    echo "CUPS did not restart; see: journalctl -u cups" >&2; exit 1
elif command -v service >/dev/null 2>&1; then
    service cups restart && exit 0
    echo "CUPS did not restart" >&2; exit 1
fi
echo "CUPS is not installed on this computer; there is no print service to restart." >&2
exit 3
