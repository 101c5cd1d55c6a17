#!/bin/sh
# install-packages: install packages with the device's package manager.
# remove-packages: remove packages with the device's package manager.
# verify-packages-installed: check that packages are installed; exit 1 naming those that are not.
# verify-packages-removed: check that packages are not installed; exit 1 naming those that are.
#
# One script for the four: the library registers it under each name above, written into
# `handler=` below, and the script does what its name says.
# The agent passes the step's runAsUser first, then the args: PACKAGE...
# (names may also come as one space-separated argument, as a template's {{PACKAGES}} does).
# Uses the device's package manager: apt-get, dnf, yum, apk or opkg, the first one found.
set -u
handler=@handler@
case $handler in
    install-packages|remove-packages|verify-packages-installed|verify-packages-removed) ;;
    *) echo "packages.sh runs as one of the handlers it names, not as $handler" >&2; exit 2 ;;
esac

usage() {
    cat >&2 <<USAGE
usage: $handler USER PACKAGE...
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
        -*|*[!A-Za-z0-9.+_:~=-]*) echo "$handler: not a package name: $package" >&2; usage ;;
    esac
done

manager=
for candidate in apt-get dnf yum apk opkg; do
    if command -v "$candidate" >/dev/null 2>&1; then manager=$candidate; break; fi
done
if [ -z "$manager" ]; then
    echo "$handler: no supported package manager (apt-get, dnf, yum, apk, opkg) found" >&2
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

verify() {  # WANTED_STATE WRONG_LABEL PACKAGE...: one line a package, exit 1 naming the wrong
    wanted=$1
    label=$2
    shift 2
    wrong=
    for package in "$@"; do
        if installed "$package"; then state=installed; else state="not installed"; fi
        echo "$package: $state"
        [ "$state" = "$wanted" ] || wrong="$wrong $package"
    done
    if [ -n "$wrong" ]; then
        echo "$label:$wrong" >&2
        exit 1
    fi
}

case $handler in
    install-packages)
        case $manager in
            apt-get) DEBIAN_FRONTEND=noninteractive apt-get update -q \
                         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -- "$@" ;;
            dnf|yum) "$manager" install -y -- "$@" ;;
            apk) apk add --no-progress -- "$@" ;;
            opkg) opkg update && opkg install "$@" ;;
        esac || { echo "$handler: $manager could not install: $*" >&2; exit 1; }
        echo "installed with $manager: $*" ;;
    remove-packages)
        case $manager in
            apt-get) DEBIAN_FRONTEND=noninteractive apt-get remove -y -q -- "$@" ;;
            dnf|yum) "$manager" remove -y -- "$@" ;;
            apk) apk del --no-progress -- "$@" ;;
            opkg) opkg remove "$@" ;;
        esac || { echo "$handler: $manager could not remove: $*" >&2; exit 1; }
        echo "removed with $manager: $*" ;;
    verify-packages-installed) verify installed "not installed" "$@" ;;
    verify-packages-removed) verify "not installed" "still installed" "$@" ;;
esac
