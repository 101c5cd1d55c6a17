#!/bin/sh
# verify-packages-installed: check that packages are installed; exit 1 naming those that are not.
#
# The agent passes the step's runAsUser first, then the args: PACKAGE...
# (names may also come as one space-separated argument, as a template's {{PACKAGES}} does).
# Uses the device's package manager: apt-get, dnf, yum, apk or opkg, the first one found.
set -u

usage() {
    cat >&2 <<'USAGE'
usage: verify-packages-installed USER PACKAGE...
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
        -*|*[!A-Za-z0-9.+_:~=-]*) echo "verify-packages-installed: not a package name: $package" >&2; usage ;;
    esac
done

manager=
for candidate in apt-get dnf yum apk opkg; do
    if command -v "$candidate" >/dev/null 2>&1; then manager=$candidate; break; fi
done
if [ -z "$manager" ]; then
    echo "verify-packages-installed: no supported package manager (apt-get, dnf, yum, apk, opkg) found" >&2
    exit 1
fi

installed() {
    case $manager in
        apt-get) dpkg-query -W -f='${Status}' -- "$1" 2>/dev/null | grep -q ' installed$' ;;
        dnf|yum) rpm -q --quiet -- "$1" ;;
        apk) apk info -e -- "$1" >/dev/null 2>&1 ;;
        opkg) opkg status "$1" 2>/dev/null | grep -q '^Status:.* installed' ;;
    esac
}

wrong=
for package in "$@"; do
    if installed "$package"; then state=installed; else state="not installed"; fi
    echo "$package: $state"
    [ "$state" = "installed" ] || wrong="$wrong $package"
done
if [ -n "$wrong" ]; then
    echo "not installed:$wrong" >&2
    exit 1
fi
