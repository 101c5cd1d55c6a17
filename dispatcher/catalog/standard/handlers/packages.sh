#!/bin/sh
# install-packages: install packages with the device's package manager.
#
# The agent passes the step's runAsUser first, then the args: PACKAGE...
# (names may also come as one space-separated argument, as a template's {{PACKAGES}} does).
# Uses the device's package manager: apt-get, dnf, yum, apk or opkg, the first one found.
set -u

usage() {
    cat >&2 <<'USAGE'
usage: install-packages USER PACKAGE...
  USER     the step's runAsUser, passed by the agent (may be empty)
  PACKAGE  package names (letters, digits and . + - _ : ~ =), at least one
USAGE
    exit 2
}

[ $# -ge 1 ] && [ "$1" != "--help" ] || usage
shift
# shellcheck disable=SC2048,SC2086  # splitting "a b" into two names is the point
set -f  # a name like "*" is refused below, never expanded
set -- $*
[ $# -ge 1 ] || usage
for package in "$@"; do
    case $package in
        -*|*[!A-Za-z0-9.+_:~=-]*) echo "install-packages: not a package name: $package" >&2; usage ;;
    esac
done

manager=
for candidate in apt-get dnf yum apk opkg; do
    if command -v "$candidate" >/dev/null 2>&1; then manager=$candidate; break; fi
done
if [ -z "$manager" ]; then
    echo "install-packages: no supported package manager (apt-get, dnf, yum, apk, opkg) found" >&2
    exit 1
fi

case $manager in
    apt-get) DEBIAN_FRONTEND=noninteractive apt-get update -q \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -- "$@" ;;
    dnf|yum) "$manager" install -y -- "$@" ;;
    apk) apk add --no-progress -- "$@" ;;
    opkg) opkg update && opkg install "$@" ;;
esac || { echo "install-packages: $manager could not install: $*" >&2; exit 1; }
echo "installed with $manager: $*"
