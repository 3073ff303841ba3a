#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the relay's tests (issue 16, docs/testing.md).
#
#   tests/postgres/cluster.sh start DIR [PORT]   initdb in DIR, start on 127.0.0.1:PORT (a free
#                                               port if omitted), print the URL on stdout
#   tests/postgres/cluster.sh stop DIR          stop it (fast shutdown) and keep DIR
#   tests/postgres/cluster.sh kill DIR          stop it at once (immediate shutdown)
#   tests/postgres/cluster.sh restart DIR       start a stopped cluster again on its old port
#
# With CLUSTER_TLS=1, `start` also makes a CA (DIR/ca.pem) and a server certificate for
# 127.0.0.1 and localhost, turns on ssl, and prints a URL with sslmode=require.
#
# Installs Debian's `postgresql` with apt-get when no initdb is found. The server refuses to run
# as root, so as root the cluster runs as the system user `streetsync-pg` (created if missing).
# Trust authentication on loopback only: the cluster lives for one test run.
set -euo pipefail

find_bin() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
    done
    return 1
}

ensure_installed() {
    if find_bin initdb >/dev/null && find_bin pg_ctl >/dev/null; then return; fi
    echo "cluster.sh: no initdb found; installing Debian's postgresql" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    find_bin initdb >/dev/null || { echo "cluster.sh: initdb still missing after apt-get" >&2; exit 1; }
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u streetsync-pg -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" >&2; exit 2; }

case "$cmd" in
start)
    ensure_installed
    if [ "$(id -u)" -eq 0 ] && ! id streetsync-pg >/dev/null 2>&1; then
        useradd -r -M -d /nonexistent -s /usr/sbin/nologin streetsync-pg
    fi
    port=${3:-$(free_port)}
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown streetsync-pg "$dir"; fi
    chmod 700 "$dir"
    as_owner "$(find_bin initdb)" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    if [ "$(id -u)" -eq 0 ]; then chown streetsync-pg "$dir/port"; fi
    if [ "${CLUSTER_TLS:-0}" = 1 ]; then
        (
            cd "$dir"
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=streetsync test CA" \
                -keyout ca.key -out ca.pem >/dev/null 2>&1
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout data/server.key -out server.csr >/dev/null 2>&1
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile server.ext -out data/server.crt >/dev/null 2>&1
            chmod 600 data/server.key
            if [ "$(id -u)" -eq 0 ]; then chown streetsync-pg data/server.key data/server.crt; fi
            echo "ssl = on" >>data/postgresql.conf
        )
        touch "$dir/tls"
    fi
    "$0" restart "$dir"
    ;;
restart)
    port=$(cat "$dir/port")
    # fsync stays on: the relay's durability tests kill processes, not the machine, but the
    # settings are the production ones apart from the socket directory and the connection cap.
    as_owner "$(find_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c max_connections=400 -c shared_buffers=64MB" \
        start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    if [ -e "$dir/tls" ]; then
        echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=require"
    else
        echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    fi
    ;;
stop)
    as_owner "$(find_bin pg_ctl)" -D "$dir/data" -m fast -w stop >&2 || true
    ;;
kill)
    as_owner "$(find_bin pg_ctl)" -D "$dir/data" -m immediate -w stop >&2 || true
    ;;
*)
    echo "cluster.sh: unknown command $cmd" >&2; exit 2
    ;;
esac
