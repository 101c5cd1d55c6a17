#!/bin/sh
# reboot: reboot the device now.
#
# The agent passes the step's runAsUser first; the handler takes no other argument. The agent
# treats a step running this handler as a reboot step: it records the step before it runs,
# waits for the system to go down, and reports the step done when it starts on a new boot (and
# FAILED when the boot id has not changed after its reboot_wait_s).
set -u

usage() {
    cat >&2 <<'USAGE'
usage: reboot USER
  USER  the step's runAsUser, passed by the agent (may be empty)
USAGE
    exit 2
}

[ $# -eq 1 ] && [ "$1" != "--help" ] || usage
sync
echo "rebooting"
if command -v systemctl >/dev/null 2>&1; then
    exec systemctl reboot
elif command -v shutdown >/dev/null 2>&1; then
    exec shutdown -r now
else
    exec reboot
fi
