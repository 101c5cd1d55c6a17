#!/bin/sh
# start-services: start system services, stopping at the first that fails.
#
# The agent passes the step's runAsUser first, then the args: SERVICE...
# (names may also come as one space-separated argument, as a template's {{SERVICES}} does).
# systemd (systemctl) where the device has it; otherwise OpenRC (rc-service), then
# service(8), then the /etc/init.d script of that name.
set -u

usage() {
    cat >&2 <<'USAGE'
usage: start-services USER SERVICE...
  USER     the step's runAsUser, passed by the agent (may be empty)
  SERVICE  service names (letters, digits and . _ @ : -), at least one
USAGE
    exit 2
}

[ $# -ge 1 ] && [ "$1" != "--help" ] || usage
shift
set -f  # a name like "*" is refused below, never expanded
# shellcheck disable=SC2048,SC2086  # splitting "a b" into two names is the point
set -- $*
[ $# -ge 1 ] || usage
for service in "$@"; do
    case $service in
        -*|*[!A-Za-z0-9._@:-]*) echo "start-services: not a service name: $service" >&2; usage ;;
    esac
done

for service in "$@"; do
    if command -v systemctl >/dev/null 2>&1; then
        systemctl start -- "$service"
    elif command -v rc-service >/dev/null 2>&1; then
        rc-service "$service" start
    elif command -v service >/dev/null 2>&1; then
        service "$service" start
    elif [ -x "/etc/init.d/$service" ]; then
        "/etc/init.d/$service" start
    else
        echo "start-services: no service manager found (systemctl, rc-service, service, /etc/init.d)" >&2
        exit 1
    fi || { echo "start-services: could not start $service" >&2; exit 1; }
    echo "start: $service"
done
