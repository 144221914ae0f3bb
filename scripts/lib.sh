# shellcheck shell=bash
# Helpers shared by scripts/demo and other scripts that need a throwaway PostgreSQL server.
# Source it: `. "$(dirname "$0")/lib.sh"`. It sets no shell options of its own.
#
#   pg_start_throwaway BINDIR   initdb into a new temporary directory and start a server on a free
#                               port from 54000 up, listening on 127.0.0.1 and on a unix socket in
#                               that directory. Sets and exports:
#                                 PGKICK_DEMO_DIR     the temporary directory (data in ./data)
#                                 PGKICK_DEMO_HOST    the unix socket directory (= PGKICK_DEMO_DIR)
#                                 PGKICK_DEMO_PORT    the port
#                                 PGKICK_DEMO_USER    the superuser role, postgres
#                                 PGKICK_DEMO_BINDIR  BINDIR
#                                 PGKICK_DEMO_LOG     the server log
#   pg_stop_throwaway           stop that server (fast, then immediate) and remove the directory;
#                               safe to call twice, or when nothing was started. Call it from an
#                               EXIT trap.
#   pg_as_server_user CMD...    run CMD as the OS user that owns the server: as root, the user
#                               named by PGKICK_TEST_OS_USER (default postgres, created if missing
#                               by scripts/ensure-os-user); otherwise the current user.
#   pg_log MSG...               print "NAME: MSG" on stderr, NAME being the calling script's name.
#
# Settings favour speed over durability (fsync=off, no WAL archiving); authentication is trust.

pg_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

pg_server_os_user() {
    if [[ $EUID -eq 0 ]]; then
        printf '%s\n' "${PGKICK_TEST_OS_USER:-postgres}"
    else
        id -un
    fi
}

pg_as_server_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$(pg_server_os_user)" -- "$@"
    else
        "$@"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start_throwaway() {
    local bindir=${1:?usage: pg_start_throwaway BINDIR}
    local lib_dir dir port tries
    lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    [[ -x $bindir/initdb && -x $bindir/pg_ctl && -x $bindir/postgres ]] ||
        { pg_log "error: $bindir has no initdb, pg_ctl and postgres"; return 1; }

    if [[ $EUID -eq 0 ]]; then
        "$lib_dir/ensure-os-user" "$(pg_server_os_user)" || return 1
    fi

    # A short path: a unix socket path must stay under 108 bytes.
    dir=$(mktemp -d /tmp/pgkick.XXXXXX) || return 1
    PGKICK_DEMO_DIR=$dir
    PGKICK_DEMO_HOST=$dir
    PGKICK_DEMO_USER=postgres
    PGKICK_DEMO_BINDIR=$bindir
    PGKICK_DEMO_LOG=$dir/server.log
    PGKICK_DEMO_PORT=
    export PGKICK_DEMO_DIR PGKICK_DEMO_HOST PGKICK_DEMO_USER PGKICK_DEMO_BINDIR PGKICK_DEMO_LOG
    if [[ $EUID -eq 0 ]]; then
        chown "$(pg_server_os_user)" "$dir" || return 1
    fi
    # Others (the client user, when that is not the server's owner) must reach the socket.
    chmod 755 "$dir"

    if ! pg_as_server_user "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        pg_log "error: initdb failed:"
        cat "$dir/initdb.log" >&2
        return 1
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
# pgkick throwaway server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF

    # Another process may take a free port between the check and the start: try the next one.
    port=54000
    for ((tries = 0; tries < 50; tries++, port++)); do
        pg_port_in_use "$port" && continue
        rm -f "$dir/server.log"
        if pg_as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" \
            -w -t 60 start >/dev/null 2>&1; then
            PGKICK_DEMO_PORT=$port
            export PGKICK_DEMO_PORT
            return 0
        fi
        if ! grep -qiE 'could not (bind|create (listen|any TCP))|address already in use' \
            "$dir/server.log" 2>/dev/null; then
            break
        fi
    done
    pg_log "error: the server did not start; its log:"
    cat "$dir/server.log" >&2 2>/dev/null || true
    return 1
}

pg_stop_throwaway() {
    local dir=${PGKICK_DEMO_DIR:-}
    [[ -n $dir && -d $dir ]] || return 0
    if [[ -f $dir/data/postmaster.pid ]]; then
        pg_as_server_user "$PGKICK_DEMO_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop \
            >/dev/null 2>&1 ||
            pg_as_server_user "$PGKICK_DEMO_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    PGKICK_DEMO_DIR=
}
