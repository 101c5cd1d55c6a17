#!/usr/bin/env bash
# Make sure PostgreSQL, Redis, RabbitMQ and Mosquitto are running on this machine, installing
# them with apt when they are absent (and Chromium for the browser tests, nginx for the proxy
# tests). Says what it does; safe to run again and again.
set -euo pipefail

say() { printf '[services] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null; then
        say "cannot install $*: no apt-get on this machine; install it by hand"; exit 1
    fi
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"; as_root apt-get update -qq; apt_updated=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for NAME COMMAND...
    local name=$1; shift
    for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && { say "$name is up"; return 0; }; sleep 0.2; done
    say "$name did not come up"; return 1
}

# PostgreSQL
command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
if pg_isready -q -h 127.0.0.1 -p 5432; then
    say "PostgreSQL is running"
else
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi
if ! psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null 2>&1; then
    say "allowing local trust logins for user postgres on 127.0.0.1 (development only)"
    hba=$(as_root su postgres -c "psql -Atc 'show hba_file'")
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    as_root su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
fi

# Chromium and its WebDriver, for the portal's browser tests (tests/browser)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi

# nginx, the reverse proxy that the proxy and rate-limit tests start in front of the API
# (never started here: each test runs its own on a free port)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx

# PgBouncer, which the transaction-pooling tests (tests/integration/test_pgbouncer.py) start on a
# free port of their own: installed with its packaged service left off, as a policy-rc.d of ours
# keeps it for the install (unless the machine already has one)
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    status=0; apt_install pgbouncer || status=$?
    [ "$own_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
    [ "$status" = 0 ] || exit "$status"
fi

# Redis
command -v redis-server >/dev/null || apt_install redis-server
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Redis is running"
else
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

# RabbitMQ: the chaos tests and the RabbitMQ end-to-end tests start nodes of their own from its
# binaries; the machine's node (127.0.0.1:5672) serves CELERY_BROKER_URL=amqp://… by hand.
command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    say "RabbitMQ is running"
else
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached
    wait_for RabbitMQ bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' || say "RabbitMQ is slow to start; the tests start nodes of their own"
fi

# Mosquitto
command -v mosquitto >/dev/null || apt_install mosquitto mosquitto-clients
port_open() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if port_open; then
    say "Mosquitto is running"
else
    say "starting Mosquitto"
    if [ -f /etc/mosquitto/mosquitto.conf ]; then
        mosquitto -d -c /etc/mosquitto/mosquitto.conf
    else
        mosquitto -d -p 1883
    fi
    wait_for Mosquitto port_open
fi
