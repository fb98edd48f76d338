#!/bin/sh
# Free disk space: the user's cache and temporary folders, and the trash.
# PUENTE_DRY_RUN=1 only lists what would be deleted. Parameters arrive as
# environment variables (PUENTE_PARAM_DAYS, PUENTE_PARAM_TRASH), never as code.
set -u

days="${PUENTE_PARAM_DAYS:-0}"
trash="${PUENTE_PARAM_TRASH:-true}"
dry="${PUENTE_DRY_RUN:-0}"
case "$days" in ''|*[!0-9]*) echo "days must be a whole number" >&2; exit 2 ;; esac
minutes=$((days * 1440))

targets="${XDG_CACHE_HOME:-$HOME/.cache}"
if [ "$(uname -s)" = "Darwin" ]; then
    targets="$targets
$HOME/Library/Caches"
    [ "$trash" = "true" ] && targets="$targets
$HOME/.Trash"
else
    [ "$trash" = "true" ] && targets="$targets
${XDG_DATA_HOME:-$HOME/.local/share}/Trash"
fi
# Our own files in the temporary folder (other users' files are never touched).
tmp="${TMPDIR:-/tmp}"

kib_of() {  # total KiB of the files that would be deleted under $1
    find "$1" -xdev -type f -mmin +"$minutes" -user "$(id -u)" -exec du -k {} + 2>/dev/null \
        | awk '{ s += $1 } END { print s + 0 }'
}

total=0
echo "$targets" | {
    while IFS= read -r dir; do
        [ -n "$dir" ] && [ -d "$dir" ] && [ ! -L "$dir" ] || continue
        kib=$(kib_of "$dir")
        total=$((total + kib))
        if [ "$dry" = "1" ]; then
            echo "would delete $kib KiB of files in $dir"
        else
            find "$dir" -xdev -type f -mmin +"$minutes" -user "$(id -u)" -delete 2>/dev/null
            find "$dir" -xdev -mindepth 1 -type d -empty -delete 2>/dev/null
            echo "deleted $kib KiB of files in $dir"
        fi
    done
    if [ -d "$tmp" ]; then
        kib=$(find "$tmp" -xdev -maxdepth 1 -mindepth 1 -user "$(id -u)" -mmin +"$((minutes > 1440 ? minutes : 1440))" \
            -exec du -sk {} + 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
        total=$((total + kib))
        if [ "$dry" = "1" ]; then
            echo "would delete $kib KiB of your files older than a day in $tmp"
        else
            find "$tmp" -xdev -maxdepth 1 -mindepth 1 -user "$(id -u)" \
                -mmin +"$((minutes > 1440 ? minutes : 1440))" -exec rm -rf {} + 2>/dev/null
            echo "deleted $kib KiB of your files older than a day in $tmp"
        fi
    fi
    if [ "$dry" = "1" ]; then
        echo "In total $total KiB would be freed."
    else
        echo "In total $total KiB were freed."
    fi
}
