#!/bin/sh
# download-file: fetch a URL into a file, all or nothing.
#
# The agent passes the step's runAsUser first (the Device Client's convention), then the args:
#   URL DESTINATION [SHA256]
# The file is written to a temporary file beside DESTINATION and moved into place only when
# the download is complete and, when SHA256 is given, matches it: a failed or tampered download
# never replaces what was there. https certificates are always verified (curl or wget, whichever
# the device has; no option turns verification off).
set -u

usage() {
    cat >&2 <<'USAGE'
usage: download-file USER URL DESTINATION [SHA256]
  USER         the step's runAsUser, passed by the agent (may be empty)
  URL          http:// or https:// address of the file
  DESTINATION  absolute path of the file to write; its directory must exist
  SHA256       optional: the file's expected sha256 (64 hex digits); a mismatch fails
USAGE
    exit 2
}

[ $# -ge 1 ] && [ "$1" != "--help" ] || usage
shift
[ $# -ge 2 ] && [ $# -le 3 ] || usage
url=$1
destination=$2
expected=${3:-}
case $url in
    https://?*|http://?*) ;;
    *) echo "download-file: URL must start with http:// or https://: $url" >&2; usage ;;
esac
case $destination in
    /*) ;;
    *) echo "download-file: DESTINATION must be an absolute path: $destination" >&2; usage ;;
esac
case $destination in */) echo "download-file: DESTINATION names a directory" >&2; usage ;; esac
if [ -n "$expected" ]; then
    expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
    case $expected in
        *[!0-9a-f]*) echo "download-file: SHA256 must be 64 hex digits" >&2; usage ;;
    esac
    [ ${#expected} -eq 64 ] || { echo "download-file: SHA256 must be 64 hex digits" >&2; usage; }
fi

directory=$(dirname -- "$destination")
if [ ! -d "$directory" ]; then
    echo "download-file: directory $directory does not exist" >&2
    exit 1
fi
partial=$(mktemp "$directory/.download-file.XXXXXX") || exit 1
trap 'rm -f -- "$partial"' EXIT
trap 'exit 1' INT TERM HUP

if command -v curl >/dev/null 2>&1; then
    # Redirects may not leave https once there, nor go anywhere but http(s).
    curl --fail --silent --show-error --location --max-redirs 5 \
        --proto '=http,https' --proto-redir '=https' \
        --connect-timeout 30 --retry 2 --output "$partial" -- "$url" || exit 1
elif command -v wget >/dev/null 2>&1; then
    # wget reports even a success on stderr: its messages are shown only when it fails.
    if ! messages=$(wget --no-verbose --max-redirect=5 --timeout=30 --tries=3 \
            -O "$partial" -- "$url" 2>&1); then
        printf '%s\n' "$messages" >&2
        exit 1
    fi
else
    echo "download-file: neither curl nor wget is installed" >&2
    exit 1
fi

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum -- "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 -- "$1" | cut -d ' ' -f 1
    else
        openssl dgst -sha256 -r -- "$1" | cut -d ' ' -f 1
    fi
}

actual=$(sha256_of "$partial") || { echo "download-file: cannot compute sha256" >&2; exit 1; }
if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    echo "download-file: sha256 mismatch for $url: expected $expected, got $actual" >&2
    exit 1
fi
chmod 644 -- "$partial" || exit 1
mv -f -- "$partial" "$destination" || exit 1
trap - EXIT
size=$(wc -c < "$destination" | tr -d ' ')
echo "downloaded $url to $destination ($size bytes, sha256 $actual)"
