#!/usr/bin/env bash
# What tests/bench/scale_out.py runs besides the services of deploy/services.sh: HAProxy (the
# load balancer), PgBouncer (the connection pooler) and RabbitMQ (the broker), installed from the
# distribution when absent, and RabbitMQ started. HAProxy, PgBouncer and the second Mosquitto
# are started by the benchmark itself, on ports of its own. Safe to run again and again.
set -euo pipefail

say() { printf '[scale-out services] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { say "install ${missing[*]} by hand: no apt-get here"; exit 1; }
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    # The packages' own services stay off (the benchmark runs its own instances): a
    # policy-rc.d of ours for the install, unless the machine already has one.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
        || status=$?
    [ "$own_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
    [ "$status" = 0 ] || exit "$status"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open 5672; then
    say "RabbitMQ is running"
else
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached
    for _ in $(seq 1 150); do port_open 5672 && { say "RabbitMQ is up"; exit 0; }; sleep 0.2; done
    say "RabbitMQ did not come up"; exit 1
fi
