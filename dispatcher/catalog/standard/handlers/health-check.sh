#!/bin/sh
# health-check: check disk, memory, load and temperature against thresholds; exit 1 if any fails.
#
# The agent passes the step's runAsUser first, then the args (all optional):
#   --disk-path PATH          filesystem to check (default /)
#   --min-disk-free PERCENT   free space on it, at least (default 10)
#   --min-memory-free PERCENT MemAvailable of MemTotal, at least (default 10)
#   --max-load LOAD           1-minute load average per CPU, at most (default 2)
#   --max-temperature DEGREES hottest thermal zone in °C, at most (default 80); skipped when the
#                             device has no thermal zones
#   --thermal-dir DIR         where the thermal zones are (default /sys/class/thermal)
# One line per check on stdout; the failed ones again on stderr.
set -u

usage() {
    cat >&2 <<'USAGE'
usage: health-check USER [--disk-path PATH] [--min-disk-free PERCENT]
                         [--min-memory-free PERCENT] [--max-load LOAD]
                         [--max-temperature DEGREES] [--thermal-dir DIR]
  USER  the step's runAsUser, passed by the agent (may be empty)
USAGE
    exit 2
}

number() {  # a non-negative decimal number, or usage
    case $1 in ''|.|*[!0-9.]*|*.*.*) echo "health-check: not a number: $1" >&2; usage ;; esac
}

[ $# -ge 1 ] && [ "$1" != "--help" ] || usage
shift
disk_path=/
min_disk_free=10
min_memory_free=10
max_load=2
max_temperature=80
thermal_dir=/sys/class/thermal
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
        --disk-path) disk_path=$2 ;;
        --min-disk-free) number "$2"; min_disk_free=$2 ;;
        --min-memory-free) number "$2"; min_memory_free=$2 ;;
        --max-load) number "$2"; max_load=$2 ;;
        --max-temperature) number "$2"; max_temperature=$2 ;;
        --thermal-dir) thermal_dir=$2 ;;
        *) echo "health-check: unknown option: $1" >&2; usage ;;
    esac
    shift 2
done

failures=0
check() {  # NAME VALUE OPERATOR LIMIT UNIT: print the verdict, count a failure
    if awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=") ? v >= l : v <= l) }'
    then
        echo "$1: $2$5 (limit $3 $4$5): ok"
    else
        echo "$1: $2$5 (limit $3 $4$5): FAILED"
        echo "health-check: $1 is $2$5, limit $3 $4$5" >&2
        failures=$((failures + 1))
    fi
}

if disk=$(df -P -- "$disk_path" 2>/dev/null | awk 'NR == 2 && $2 > 0 {
        printf "%.1f", 100 * $4 / $2 }') && [ -n "$disk" ]; then
    check "disk free on $disk_path" "$disk" ">=" "$min_disk_free" "%"
else
    echo "health-check: cannot read the free space of $disk_path" >&2
    failures=$((failures + 1))
fi

memory=$(awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 }
              END { if (t > 0 && a != "") printf "%.1f", 100 * a / t }' /proc/meminfo 2>/dev/null)
if [ -n "$memory" ]; then
    check "memory available" "$memory" ">=" "$min_memory_free" "%"
else
    echo "health-check: cannot read /proc/meminfo" >&2
    failures=$((failures + 1))
fi

cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
load=$(awk -v n="$cpus" '{ printf "%.2f", $1 / (n > 0 ? n : 1) }' /proc/loadavg 2>/dev/null)
if [ -n "$load" ]; then
    check "load per cpu" "$load" "<=" "$max_load" ""
else
    echo "health-check: cannot read /proc/loadavg" >&2
    failures=$((failures + 1))
fi

hottest=
for zone in "$thermal_dir"/thermal_zone*/temp; do
    [ -r "$zone" ] || continue
    reading=$(cat -- "$zone" 2>/dev/null) || continue
    case $reading in ''|*[!0-9-]*) continue ;; esac
    if [ -z "$hottest" ] || [ "$reading" -gt "$hottest" ]; then hottest=$reading; fi
done
if [ -n "$hottest" ]; then
    check "temperature" "$(awk -v m="$hottest" 'BEGIN { printf "%.1f", m / 1000 }')" "<=" \
        "$max_temperature" "C"
else
    echo "temperature: no thermal zones, not checked"
fi

[ "$failures" -eq 0 ] || exit 1
