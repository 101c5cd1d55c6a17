#!/bin/sh
# shutdown: power the device off after a delay, so the job's result is reported first.
#
# The agent passes the step's runAsUser first, then the args: [MINUTES]
# MINUTES (default 1, at most 1440) is how long before the power goes off. The device does not
# come back by itself: nothing of the job runs after this.
set -u

usage() {
    cat >&2 <<'USAGE'
usage: shutdown USER [MINUTES]
  USER     the step's runAsUser, passed by the agent (may be empty)
  MINUTES  whole minutes before powering off (0-1440, default 1)
USAGE
    exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] && [ "$1" != "--help" ] || usage
minutes=${2:-1}
case $minutes in ''|*[!0-9]*) usage ;; esac
[ "$minutes" -le 1440 ] || usage
sync
if command -v shutdown >/dev/null 2>&1; then
    shutdown -h "+$minutes" || exit 1
elif command -v systemctl >/dev/null 2>&1 && [ "$minutes" -eq 0 ]; then
    systemctl poweroff || exit 1
else
    echo "shutdown: no shutdown command found (or systemctl, for MINUTES 0)" >&2
    exit 1
fi
echo "powering off in $minutes minute(s)"
