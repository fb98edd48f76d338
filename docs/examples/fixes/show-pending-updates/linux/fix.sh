#!/bin/sh
# Read-only: list upgradable packages with the system's package manager.
set -u
if command -v apt >/dev/null 2>&1; then
    apt list --upgradable 2>/dev/null | sed 1d
elif command -v dnf >/dev/null 2>&1; then
    dnf -q check-update; [ $? -eq 1 ] && exit 1
elif command -v zypper >/dev/null 2>&1; then
    zypper -q list-updates
elif command -v pacman >/dev/null 2>&1; then
    pacman -Qu
else
    echo "No known package manager here (apt, dnf, zypper, pacman)." >&2; exit 3
fi
if [ -f /var/run/reboot-required ]; then echo "A restart is pending."; else echo "No restart is pending."; fi
exit 0
