#!/bin/sh
# start-services: start system services, stopping at the first that fails.
# stop-services: stop system services, stopping at the first that fails.
# restart-services: restart system services, stopping at the first that fails.
#
# One script for the three: the library registers it under each name above, written into
# `handler=` below, and the name's first word is what is done to every service.
# The agent passes the step's runAsUser first, then the args: SERVICE...
# (names may also come as one space-separated argument, as a template's {{SERVICES}} does).
# systemd (systemctl) where the device has it; otherwise OpenRC (rc-service), then
# service(8), then the /etc/init.d script of that name.
set -u
handler=@handler@
verb=${handler%-services}
case $verb in
    start|stop|restart) ;;
    *) echo "services.sh runs as one of the handlers it names, not as $handler" >&2; exit 2 ;;
esac

usage() {
    cat >&2 <<USAGE
usage: $handler USER SERVICE...
  USER     the step's runAsUser, passed by the agent (may be empty)
  SERVICE  service names (letters, digits and . _ @ : -), at least one
USAGE
    exit 2
}

[ $# -ge 1 ] && [ "$1" != "--help" ] || usage
shift
set -f  # a name like "*" is refused below, never expanded
services=
# shellcheck disable=SC2048  # splitting "a b" into two names is the point
for service in $*; do
    case $service in
        -*|*[!A-Za-z0-9._@:-]*) echo "$handler: not a service name: $service" >&2; usage ;;
    esac
    services="$services $service"
done
[ -n "$services" ] || usage

for service in $services; do
    if command -v systemctl >/dev/null 2>&1; then
        systemctl "$verb" -- "$service"
    elif command -v rc-service >/dev/null 2>&1; then
        rc-service "$service" "$verb"
    elif command -v service >/dev/null 2>&1; then
        service "$service" "$verb"
    elif [ -x "/etc/init.d/$service" ]; then
        "/etc/init.d/$service" "$verb"
    else
        echo "$handler: no service manager found (systemctl, rc-service, service, /etc/init.d)" >&2
        exit 1
    fi || { echo "$handler: could not $verb $service" >&2; exit 1; }
    echo "$verb: $service"
done
