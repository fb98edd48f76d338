#!/bin/sh
# Flush the local DNS cache: systemd-resolved, nscd or dnsmasq, whichever runs here.
# Without root, systemd-resolved may refuse (polkit); we say so plainly.
set -u
flushed=0
if command -v resolvectl >/dev/null 2>&1; then
    if resolvectl flush-caches 2>&1; then
        echo "systemd-resolved cache flushed"; flushed=1
    else
        echo "systemd-resolved refused to flush (it may need administrator rights)" >&2
    fi
elif command -v systemd-resolve >/dev/null 2>&1; then
    systemd-resolve --flush-caches 2>&1 && { echo "systemd-resolved cache flushed"; flushed=1; }
fi
if command -v nscd >/dev/null 2>&1 && pgrep -x nscd >/dev/null 2>&1; then
    nscd -i hosts 2>&1 && { echo "nscd hosts cache flushed"; flushed=1; }
fi
if pgrep -x dnsmasq >/dev/null 2>&1; then
    pkill -HUP -x dnsmasq 2>&1 && { echo "dnsmasq cache flushed"; flushed=1; }
fi
if [ "$flushed" = 0 ]; then
    echo "No DNS cache service runs on this computer; there was nothing to flush."
fi
echo "Checking that names resolve:"
if getent hosts localhost >/dev/null 2>&1; then echo "  localhost: ok"; else echo "  localhost: FAILED"; fi
exit 0
