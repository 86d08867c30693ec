# Shared by the VM tests (sourced by each tests/vm/<name>/test.sh; tests/vm/run.sh puts it
# beside them): counters, the check runner and the assertions they have in common.
# shellcheck shell=sh
set -u
pass=0
fail=0
check() { # check NAME CMD...: CMD must succeed
    name=$1
    shift
    if out=$("$@" 2>&1); then
        pass=$((pass + 1))
        echo "ok   - $name"
    else
        fail=$((fail + 1))
        echo "FAIL - $name"
        echo "$out" | sed 's/^/       /'
    fi
}
# pings NS ADDR: an answer within a few tries (neighbour discovery may need a moment).
pings() {
    i=0
    while [ $i -lt 5 ]; do
        ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
        i=$((i + 1))
        sleep 0.2
    done
    echo "no answer from $2 in $1"
    return 1
}
# blocked NS ADDR: no answer (the positive paths are shown to work first).
blocked() {
    if ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; then
        echo "$1 reached $2"
        return 1
    fi
}
contains() { # contains HAYSTACK NEEDLE
    case $1 in *"$2"*) return 0 ;; esac
    echo "missing $2 in: $1"
    return 1
}
lacks() { # lacks HAYSTACK NEEDLE
    case $1 in *"$2"*)
        echo "unexpected $2 in: $1"
        return 1
        ;;
    esac
}
code_is() { # code_is OUTPUT CODE [NEEDLE]: an error object with that code (and message part)
    c=$(echo "$1" | grep -o '"code":[0-9]*' | cut -d: -f2)
    [ "$c" = "$2" ] || { echo "code ${c:-none}, expected $2: $1"; return 1; }
    [ -z "${3:-}" ] || contains "$1" "$3"
}
only_lo() { # only_lo NS: nothing but lo in the netns (waits a moment for a DEL's child)
    i=0
    while [ $i -lt 50 ]; do
        [ "$(ip -n "$1" -o link show | wc -l)" = 1 ] && return 0
        i=$((i + 1))
        sleep 0.05
    done
    ip -n "$1" -o link show
    return 1
}
