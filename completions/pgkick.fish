# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pgkick_global_optspecs
    string join \n h/host= p/port= U/username= d/dbname= w/no-password W/password servers= each-host jobs= output= json q/quiet ?/help V/version
end

function __fish_pgkick_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pgkick_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pgkick_using_subcommand
    set -l cmd (__fish_pgkick_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pgkick -n "__fish_pgkick_needs_command" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_needs_command" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_needs_command" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_needs_command" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_needs_command" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_needs_command" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_needs_command" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_needs_command" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_needs_command" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_needs_command" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_needs_command" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_needs_command" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_needs_command" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_needs_command" -s V -l version -d 'Print version'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "list" -d 'List the sessions that match the filters'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "cancel" -d 'Cancel the current query of the matching sessions (pg_cancel_backend)'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "terminate" -d 'Terminate the matching sessions (pg_terminate_backend)'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "lock" -d 'Keep new connections out of databases, or stop roles from logging in'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "unlock" -d 'Undo exactly what `pgkick lock` changed'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "conninfo" -d 'Show where pgkick would connect and where each setting comes from, without connecting'
complete -c pgkick -n "__fish_pgkick_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l db -d 'Database name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l user -d 'User (role) name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l app -d 'Exact application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l client -d 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l state -d 'Session state, dashed or as pg_stat_activity spells it ("idle in transaction")' -r -f -a "active\t''
idle\t''
idle-in-transaction\t'Also `idle in transaction`, as pg_stat_activity and pgkick\'s table spell it'
idle-in-transaction-aborted\t''
fastpath\t''
disabled\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l query -d 'Regular expression (Rust regex syntax) searched for in the query text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l pid -d 'Process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l query-age -d 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l xact-age -d 'Transaction open for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l state-age -d 'In its current state for longer than DURATION (e.g. idle for an hour)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l backend-age -d 'Connected for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l backend-type -d 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l exclude-db -d 'Leave out sessions in this database' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l exclude-user -d 'Leave out sessions of this user' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l exclude-app -d 'Leave out sessions with this application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l exclude-pid -d 'Leave out this process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l blocks -d 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l blocked-for -d 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query\'s query_start, which can overstate it' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l pgbouncer -d 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. list: each server session of a pooler gains a `pooler` object (its client). unlock: RESUME the databases there (undoing what the lock record says was done on the same host, port and user); pgkick never connects to a pooler the record alone names, so a recorded pooler not given here stays paused (exit 3, with the command that resumes it)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l blocked -d 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l blocking -d 'Holding up at least one session that waits for a lock'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l root-blocker -d 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l tree -d 'Show the lock chains as an indented tree: each root blocker, then the sessions waiting on it with how long they have waited (table output only)'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand list" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l db -d 'Database name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l user -d 'User (role) name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l app -d 'Exact application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l client -d 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l state -d 'Session state, dashed or as pg_stat_activity spells it ("idle in transaction")' -r -f -a "active\t''
idle\t''
idle-in-transaction\t'Also `idle in transaction`, as pg_stat_activity and pgkick\'s table spell it'
idle-in-transaction-aborted\t''
fastpath\t''
disabled\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l query -d 'Regular expression (Rust regex syntax) searched for in the query text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l pid -d 'Process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l query-age -d 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l xact-age -d 'Transaction open for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l state-age -d 'In its current state for longer than DURATION (e.g. idle for an hour)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l backend-age -d 'Connected for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l backend-type -d 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l exclude-db -d 'Leave out sessions in this database' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l exclude-user -d 'Leave out sessions of this user' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l exclude-app -d 'Leave out sessions with this application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l exclude-pid -d 'Leave out this process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l blocks -d 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l blocked-for -d 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query\'s query_start, which can overstate it' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l max -d 'Refuse (exit 4, nothing signalled) when more than N sessions match' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l wait-timeout -d 'How long --wait waits before reporting the sessions still there' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l every -d 'Run the same match-and-act round every DURATION until SIGINT or SIGTERM (which end it after the current round; SIGHUP is ignored). Each round matches afresh, prints its own results and writes its own audit records; the guards apply to each round and nothing is ever asked. A round that fails (e.g. a lost connection) is reported and retried after 1s, 2s, 4s, ... up to DURATION. Exit 0 when every round succeeded, otherwise the highest status a round had' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l rounds -d 'With --every: stop after N rounds' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l reason -d 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l audit-log -d 'Append one JSON line per session or object acted on, after the server answered: to a file, to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). The file must be a regular file (no symlink, FIFO or device) owned by the user running pgkick, not writable by group or others nor readable by others (0600 or 0640), in a directory of that user or root that no one else can write unless it has the sticky bit (like /tmp); a missing one is created with mode 0600. Each line is one atomic append, so concurrent runs never interleave. pgkick acts on nothing (exit 1) when it cannot write there or refuses the file, and says what to fix' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l audit-facility -d 'The syslog facility of --audit-log syslog' -r -f -a "auth\t''
authpriv\t''
daemon\t''
user\t''
local0\t''
local1\t''
local2\t''
local3\t''
local4\t''
local5\t''
local6\t''
local7\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l blocked -d 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l blocking -d 'Holding up at least one session that waits for a lock'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l root-blocker -d 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l all -d 'Act on every session when no filter is given (otherwise refused, exit 4)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s y -l yes -d 'Do not ask for confirmation on a terminal'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s n -l dry-run -d 'Show the matched sessions and the SQL that would run; change nothing'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l wait -d 'Wait until the signalled sessions are gone (terminate) or their queries stopped (cancel)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l audit-dry-run -d 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l server-log -d 'Also leave one LOG line per run in the server\'s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand cancel" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l db -d 'Database name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l user -d 'User (role) name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l app -d 'Exact application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l client -d 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l state -d 'Session state, dashed or as pg_stat_activity spells it ("idle in transaction")' -r -f -a "active\t''
idle\t''
idle-in-transaction\t'Also `idle in transaction`, as pg_stat_activity and pgkick\'s table spell it'
idle-in-transaction-aborted\t''
fastpath\t''
disabled\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l query -d 'Regular expression (Rust regex syntax) searched for in the query text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l pid -d 'Process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l query-age -d 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l xact-age -d 'Transaction open for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l state-age -d 'In its current state for longer than DURATION (e.g. idle for an hour)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l backend-age -d 'Connected for longer than DURATION' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l backend-type -d 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l exclude-db -d 'Leave out sessions in this database' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l exclude-user -d 'Leave out sessions of this user' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l exclude-app -d 'Leave out sessions with this application_name' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l exclude-pid -d 'Leave out this process ID' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l blocks -d 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l blocked-for -d 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query\'s query_start, which can overstate it' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l max -d 'Refuse (exit 4, nothing signalled) when more than N sessions match' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l wait-timeout -d 'How long --wait waits before reporting the sessions still there' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l every -d 'Run the same match-and-act round every DURATION until SIGINT or SIGTERM (which end it after the current round; SIGHUP is ignored). Each round matches afresh, prints its own results and writes its own audit records; the guards apply to each round and nothing is ever asked. A round that fails (e.g. a lost connection) is reported and retried after 1s, 2s, 4s, ... up to DURATION. Exit 0 when every round succeeded, otherwise the highest status a round had' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l rounds -d 'With --every: stop after N rounds' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l reason -d 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l audit-log -d 'Append one JSON line per session or object acted on, after the server answered: to a file, to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). The file must be a regular file (no symlink, FIFO or device) owned by the user running pgkick, not writable by group or others nor readable by others (0600 or 0640), in a directory of that user or root that no one else can write unless it has the sticky bit (like /tmp); a missing one is created with mode 0600. Each line is one atomic append, so concurrent runs never interleave. pgkick acts on nothing (exit 1) when it cannot write there or refuses the file, and says what to fix' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l audit-facility -d 'The syslog facility of --audit-log syslog' -r -f -a "auth\t''
authpriv\t''
daemon\t''
user\t''
local0\t''
local1\t''
local2\t''
local3\t''
local4\t''
local5\t''
local6\t''
local7\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l grace -d 'How long --cancel-first waits between cancel and terminate' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l method -d 'How --lock keeps new connections out' -r -f -a "allow-connections\t'ALTER DATABASE ... ALLOW_CONNECTIONS false: keeps everyone out, superusers included'
connection-limit\t'ALTER DATABASE ... CONNECTION LIMIT 0: keeps out everyone but superusers'
revoke-connect\t'REVOKE CONNECT from PUBLIC and from every role granted CONNECT by name'"
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l lock-timeout -d 'Give up a lock whose DDL waits this long behind other transactions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l pgbouncer -d 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. PAUSE the --db databases there before the lock, so their clients wait instead of failing; the lock records it and unlock resumes them' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l pause-timeout -d 'How long PAUSE may wait for the transactions in flight; then the server backends that keep it from completing are terminated (keep it below PgBouncer\'s query_wait_timeout, 120s by default, or the queued clients fail)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l blocked -d 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l blocking -d 'Holding up at least one session that waits for a lock'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l root-blocker -d 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l all -d 'Act on every session when no filter is given (otherwise refused, exit 4)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s y -l yes -d 'Do not ask for confirmation on a terminal'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s n -l dry-run -d 'Show the matched sessions and the SQL that would run; change nothing'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l wait -d 'Wait until the signalled sessions are gone (terminate) or their queries stopped (cancel)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l audit-dry-run -d 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l server-log -d 'Also leave one LOG line per run in the server\'s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l cancel-first -d 'Cancel the sessions\' queries first, wait --grace, then terminate only the sessions that still match the filters'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l lock -d 'Lock the --db databases against new connections before terminating their sessions; then report everything else that keeps DROP DATABASE from succeeding (prepared transactions, active logical slots, subscriptions, other backends): exit 0 only when nothing is left'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l rollback-prepared -d 'With --lock: roll back the prepared transactions of the locked databases (each in its own database, through a connection opened before the lock; into a database pgkick\'s lock keeps closed already, by opening it for that connection alone), so that DROP DATABASE can succeed; without it they are only reported'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l pgbouncer-disable -d 'After the pause, also DISABLE and KILL the databases on the poolers: their clients are refused at once instead of waiting (the drop workflow); unlock runs ENABLE and RESUME'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand terminate" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l db -d 'Database to lock (repeatable)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l role -d 'Role to stop from logging in: ALTER ROLE ... NOLOGIN (repeatable)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l method -d 'How databases are locked' -r -f -a "allow-connections\t'ALTER DATABASE ... ALLOW_CONNECTIONS false: keeps everyone out, superusers included'
connection-limit\t'ALTER DATABASE ... CONNECTION LIMIT 0: keeps out everyone but superusers'
revoke-connect\t'REVOKE CONNECT from PUBLIC and from every role granted CONNECT by name'"
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l lock-timeout -d 'Give up when the DDL waits this long behind other transactions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l reason -d 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l audit-log -d 'Append one JSON line per session or object acted on, after the server answered: to a file, to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). The file must be a regular file (no symlink, FIFO or device) owned by the user running pgkick, not writable by group or others nor readable by others (0600 or 0640), in a directory of that user or root that no one else can write unless it has the sticky bit (like /tmp); a missing one is created with mode 0600. Each line is one atomic append, so concurrent runs never interleave. pgkick acts on nothing (exit 1) when it cannot write there or refuses the file, and says what to fix' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l audit-facility -d 'The syslog facility of --audit-log syslog' -r -f -a "auth\t''
authpriv\t''
daemon\t''
user\t''
local0\t''
local1\t''
local2\t''
local3\t''
local4\t''
local5\t''
local6\t''
local7\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l pgbouncer -d 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. PAUSE the --db databases there before the lock, so their clients wait instead of failing; the lock records it and unlock resumes them' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l pause-timeout -d 'How long PAUSE may wait for the transactions in flight; then the server backends that keep it from completing are terminated (keep it below PgBouncer\'s query_wait_timeout, 120s by default, or the queued clients fail)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s n -l dry-run -d 'Show the statements; change nothing'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l list -d 'Show what pgkick has locked in this cluster: what, how, by whom, since when'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l audit-dry-run -d 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l server-log -d 'Also leave one LOG line per run in the server\'s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l pgbouncer-disable -d 'After the pause, also DISABLE and KILL the databases on the poolers: their clients are refused at once instead of waiting (the drop workflow); unlock runs ENABLE and RESUME'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand lock" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l db -d 'Database to unlock (repeatable)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l role -d 'Role to unlock (repeatable)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l lock-timeout -d 'Give up when the DDL waits this long behind other transactions' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l reason -d 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l audit-log -d 'Append one JSON line per session or object acted on, after the server answered: to a file, to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). The file must be a regular file (no symlink, FIFO or device) owned by the user running pgkick, not writable by group or others nor readable by others (0600 or 0640), in a directory of that user or root that no one else can write unless it has the sticky bit (like /tmp); a missing one is created with mode 0600. Each line is one atomic append, so concurrent runs never interleave. pgkick acts on nothing (exit 1) when it cannot write there or refuses the file, and says what to fix' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l audit-facility -d 'The syslog facility of --audit-log syslog' -r -f -a "auth\t''
authpriv\t''
daemon\t''
user\t''
local0\t''
local1\t''
local2\t''
local3\t''
local4\t''
local5\t''
local6\t''
local7\t''"
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l pgbouncer -d 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. list: each server session of a pooler gains a `pooler` object (its client). unlock: RESUME the databases there (undoing what the lock record says was done on the same host, port and user); pgkick never connects to a pooler the record alone names, so a recorded pooler not given here stays paused (exit 3, with the command that resumes it)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s n -l dry-run -d 'Show the statements; change nothing'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l audit-dry-run -d 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l server-log -d 'Also leave one LOG line per run in the server\'s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand unlock" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s h -l host -d 'Database server host or socket directory [env: PGHOST]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s p -l port -d 'Database server port [env: PGPORT]; a comma-separated list for several hosts' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s U -l username -d 'Database user name [env: PGUSER]' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s d -l dbname -d 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once (all on the same side of the subcommand): each value is one server, the other options fill in what it leaves out' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l servers -d 'Read servers from FILE (- for standard input), one per line in the forms -d takes; blank lines and lines starting with # are ignored' -r -F
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l jobs -d 'Handle at most N servers at a time (1: one after another)' -r
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l output -d 'Output format' -r -f -a "table\t'A table fitted to the terminal'
json\t'One JSON array'
jsonl\t'One JSON object per line'"
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l connect -d 'Also connect, and report the server version, the address used, whether TLS is in use and the authenticated user'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s w -l no-password -d 'Never prompt for a password'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s W -l password -d 'Prompt for a password before connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l each-host -d 'Act on every host of a multi-host value (host=a,b,c), not only the first that works; with target_session_attrs, the hosts that do not match are reported as skipped'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -l json -d 'Shorthand for --output json'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s q -l quiet -d 'Print nothing but errors (the exit status tells the outcome)'
complete -c pgkick -n "__fish_pgkick_using_subcommand conninfo" -s ? -l help -d 'Print help (-? as in psql; -h is the host)'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "list" -d 'List the sessions that match the filters'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "cancel" -d 'Cancel the current query of the matching sessions (pg_cancel_backend)'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "terminate" -d 'Terminate the matching sessions (pg_terminate_backend)'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "lock" -d 'Keep new connections out of databases, or stop roles from logging in'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "unlock" -d 'Undo exactly what `pgkick lock` changed'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "conninfo" -d 'Show where pgkick would connect and where each setting comes from, without connecting'
complete -c pgkick -n "__fish_pgkick_using_subcommand help; and not __fish_seen_subcommand_from list cancel terminate lock unlock conninfo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
