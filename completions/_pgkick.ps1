
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'pgkick' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'pgkick'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'pgkick' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the sessions that match the filters')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel the current query of the matching sessions (pg_cancel_backend)')
            [CompletionResult]::new('terminate', 'terminate', [CompletionResultType]::ParameterValue, 'Terminate the matching sessions (pg_terminate_backend)')
            [CompletionResult]::new('lock', 'lock', [CompletionResultType]::ParameterValue, 'Keep new connections out of databases, or stop roles from logging in')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Undo exactly what `pgkick lock` changed')
            [CompletionResult]::new('conninfo', 'conninfo', [CompletionResultType]::ParameterValue, 'Show where pgkick would connect and where each setting comes from, without connecting')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pgkick;list' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Database name')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User (role) name')
            [CompletionResult]::new('--app', '--app', [CompletionResultType]::ParameterName, 'Exact application_name')
            [CompletionResult]::new('--client', '--client', [CompletionResultType]::ParameterName, 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Session state')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Regular expression (Rust regex syntax) searched for in the query text')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Process ID')
            [CompletionResult]::new('--query-age', '--query-age', [CompletionResultType]::ParameterName, 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m')
            [CompletionResult]::new('--xact-age', '--xact-age', [CompletionResultType]::ParameterName, 'Transaction open for longer than DURATION')
            [CompletionResult]::new('--state-age', '--state-age', [CompletionResultType]::ParameterName, 'In its current state for longer than DURATION (e.g. idle for an hour)')
            [CompletionResult]::new('--backend-age', '--backend-age', [CompletionResultType]::ParameterName, 'Connected for longer than DURATION')
            [CompletionResult]::new('--backend-type', '--backend-type', [CompletionResultType]::ParameterName, 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]')
            [CompletionResult]::new('--exclude-db', '--exclude-db', [CompletionResultType]::ParameterName, 'Leave out sessions in this database')
            [CompletionResult]::new('--exclude-user', '--exclude-user', [CompletionResultType]::ParameterName, 'Leave out sessions of this user')
            [CompletionResult]::new('--exclude-app', '--exclude-app', [CompletionResultType]::ParameterName, 'Leave out sessions with this application_name')
            [CompletionResult]::new('--exclude-pid', '--exclude-pid', [CompletionResultType]::ParameterName, 'Leave out this process ID')
            [CompletionResult]::new('--blocks', '--blocks', [CompletionResultType]::ParameterName, 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)')
            [CompletionResult]::new('--blocked-for', '--blocked-for', [CompletionResultType]::ParameterName, 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query''s query_start, which can overstate it')
            [CompletionResult]::new('--pgbouncer', '--pgbouncer', [CompletionResultType]::ParameterName, 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. list: each server session of a pooler gains a `pooler` object (its client). unlock: RESUME the databases there too (the poolers recorded by the lock are resumed anyway)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--blocked', '--blocked', [CompletionResultType]::ParameterName, 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)')
            [CompletionResult]::new('--blocking', '--blocking', [CompletionResultType]::ParameterName, 'Holding up at least one session that waits for a lock')
            [CompletionResult]::new('--root-blocker', '--root-blocker', [CompletionResultType]::ParameterName, 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up')
            [CompletionResult]::new('--tree', '--tree', [CompletionResultType]::ParameterName, 'Show the lock chains as an indented tree: each root blocker, then the sessions waiting on it with how long they have waited (table output only)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;cancel' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Database name')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User (role) name')
            [CompletionResult]::new('--app', '--app', [CompletionResultType]::ParameterName, 'Exact application_name')
            [CompletionResult]::new('--client', '--client', [CompletionResultType]::ParameterName, 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Session state')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Regular expression (Rust regex syntax) searched for in the query text')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Process ID')
            [CompletionResult]::new('--query-age', '--query-age', [CompletionResultType]::ParameterName, 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m')
            [CompletionResult]::new('--xact-age', '--xact-age', [CompletionResultType]::ParameterName, 'Transaction open for longer than DURATION')
            [CompletionResult]::new('--state-age', '--state-age', [CompletionResultType]::ParameterName, 'In its current state for longer than DURATION (e.g. idle for an hour)')
            [CompletionResult]::new('--backend-age', '--backend-age', [CompletionResultType]::ParameterName, 'Connected for longer than DURATION')
            [CompletionResult]::new('--backend-type', '--backend-type', [CompletionResultType]::ParameterName, 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]')
            [CompletionResult]::new('--exclude-db', '--exclude-db', [CompletionResultType]::ParameterName, 'Leave out sessions in this database')
            [CompletionResult]::new('--exclude-user', '--exclude-user', [CompletionResultType]::ParameterName, 'Leave out sessions of this user')
            [CompletionResult]::new('--exclude-app', '--exclude-app', [CompletionResultType]::ParameterName, 'Leave out sessions with this application_name')
            [CompletionResult]::new('--exclude-pid', '--exclude-pid', [CompletionResultType]::ParameterName, 'Leave out this process ID')
            [CompletionResult]::new('--blocks', '--blocks', [CompletionResultType]::ParameterName, 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)')
            [CompletionResult]::new('--blocked-for', '--blocked-for', [CompletionResultType]::ParameterName, 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query''s query_start, which can overstate it')
            [CompletionResult]::new('--max', '--max', [CompletionResultType]::ParameterName, 'Refuse (exit 4, nothing signalled) when more than N sessions match')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'How long --wait waits before reporting the sessions still there')
            [CompletionResult]::new('--every', '--every', [CompletionResultType]::ParameterName, 'Run the same match-and-act round every DURATION until SIGINT or SIGTERM (which end it after the current round; SIGHUP is ignored). Each round matches afresh, prints its own results and writes its own audit records; the guards apply to each round and nothing is ever asked. A round that fails (e.g. a lost connection) is reported and retried after 1s, 2s, 4s, ... up to DURATION. Exit 0 when every round succeeded, otherwise the highest status a round had')
            [CompletionResult]::new('--rounds', '--rounds', [CompletionResultType]::ParameterName, 'With --every: stop after N rounds')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text')
            [CompletionResult]::new('--audit-log', '--audit-log', [CompletionResultType]::ParameterName, 'Append one JSON line per session or object acted on, after the server answered: to a file (created with mode 0600; each line one atomic append, so concurrent runs never interleave), to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). pgkick acts on nothing when it cannot write there')
            [CompletionResult]::new('--audit-facility', '--audit-facility', [CompletionResultType]::ParameterName, 'The syslog facility of --audit-log syslog')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--blocked', '--blocked', [CompletionResultType]::ParameterName, 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)')
            [CompletionResult]::new('--blocking', '--blocking', [CompletionResultType]::ParameterName, 'Holding up at least one session that waits for a lock')
            [CompletionResult]::new('--root-blocker', '--root-blocker', [CompletionResultType]::ParameterName, 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Act on every session when no filter is given (otherwise refused, exit 4)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation on a terminal')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation on a terminal')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Show the matched sessions and the SQL that would run; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the matched sessions and the SQL that would run; change nothing')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait until the signalled sessions are gone (terminate) or their queries stopped (cancel)')
            [CompletionResult]::new('--audit-dry-run', '--audit-dry-run', [CompletionResultType]::ParameterName, 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)')
            [CompletionResult]::new('--server-log', '--server-log', [CompletionResultType]::ParameterName, 'Also leave one LOG line per run in the server''s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;terminate' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Database name')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User (role) name')
            [CompletionResult]::new('--app', '--app', [CompletionResultType]::ParameterName, 'Exact application_name')
            [CompletionResult]::new('--client', '--client', [CompletionResultType]::ParameterName, 'Client address: an IP address, a CIDR range, or `local` for unix-socket sessions')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Session state')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'Regular expression (Rust regex syntax) searched for in the query text')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Process ID')
            [CompletionResult]::new('--query-age', '--query-age', [CompletionResultType]::ParameterName, 'Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m')
            [CompletionResult]::new('--xact-age', '--xact-age', [CompletionResultType]::ParameterName, 'Transaction open for longer than DURATION')
            [CompletionResult]::new('--state-age', '--state-age', [CompletionResultType]::ParameterName, 'In its current state for longer than DURATION (e.g. idle for an hour)')
            [CompletionResult]::new('--backend-age', '--backend-age', [CompletionResultType]::ParameterName, 'Connected for longer than DURATION')
            [CompletionResult]::new('--backend-type', '--backend-type', [CompletionResultType]::ParameterName, 'Backend type, as pg_stat_activity.backend_type names it [default: client backend]')
            [CompletionResult]::new('--exclude-db', '--exclude-db', [CompletionResultType]::ParameterName, 'Leave out sessions in this database')
            [CompletionResult]::new('--exclude-user', '--exclude-user', [CompletionResultType]::ParameterName, 'Leave out sessions of this user')
            [CompletionResult]::new('--exclude-app', '--exclude-app', [CompletionResultType]::ParameterName, 'Leave out sessions with this application_name')
            [CompletionResult]::new('--exclude-pid', '--exclude-pid', [CompletionResultType]::ParameterName, 'Leave out this process ID')
            [CompletionResult]::new('--blocks', '--blocks', [CompletionResultType]::ParameterName, 'The sessions PID waits on, directly or through a chain of waiting sessions (never PID itself)')
            [CompletionResult]::new('--blocked-for', '--blocked-for', [CompletionResultType]::ParameterName, 'With --blocked: waiting for its lock for longer than DURATION; with --blocking, --root-blocker or --blocks: keeping a session waiting on it directly for longer than DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14 it is taken from the waiting query''s query_start, which can overstate it')
            [CompletionResult]::new('--max', '--max', [CompletionResultType]::ParameterName, 'Refuse (exit 4, nothing signalled) when more than N sessions match')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'How long --wait waits before reporting the sessions still there')
            [CompletionResult]::new('--every', '--every', [CompletionResultType]::ParameterName, 'Run the same match-and-act round every DURATION until SIGINT or SIGTERM (which end it after the current round; SIGHUP is ignored). Each round matches afresh, prints its own results and writes its own audit records; the guards apply to each round and nothing is ever asked. A round that fails (e.g. a lost connection) is reported and retried after 1s, 2s, 4s, ... up to DURATION. Exit 0 when every round succeeded, otherwise the highest status a round had')
            [CompletionResult]::new('--rounds', '--rounds', [CompletionResultType]::ParameterName, 'With --every: stop after N rounds')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text')
            [CompletionResult]::new('--audit-log', '--audit-log', [CompletionResultType]::ParameterName, 'Append one JSON line per session or object acted on, after the server answered: to a file (created with mode 0600; each line one atomic append, so concurrent runs never interleave), to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). pgkick acts on nothing when it cannot write there')
            [CompletionResult]::new('--audit-facility', '--audit-facility', [CompletionResultType]::ParameterName, 'The syslog facility of --audit-log syslog')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'How long --cancel-first waits between cancel and terminate')
            [CompletionResult]::new('--method', '--method', [CompletionResultType]::ParameterName, 'How --lock keeps new connections out')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Give up a lock whose DDL waits this long behind other transactions')
            [CompletionResult]::new('--pgbouncer', '--pgbouncer', [CompletionResultType]::ParameterName, 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. PAUSE the --db databases there before the lock, so their clients wait instead of failing; the lock records it and unlock resumes them')
            [CompletionResult]::new('--pause-timeout', '--pause-timeout', [CompletionResultType]::ParameterName, 'How long PAUSE may wait for the transactions in flight; then the server backends that keep it from completing are terminated (keep it below PgBouncer''s query_wait_timeout, 120s by default, or the queued clients fail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--blocked', '--blocked', [CompletionResultType]::ParameterName, 'Waiting for a lock that another session (or a prepared transaction) holds or waits for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)')
            [CompletionResult]::new('--blocking', '--blocking', [CompletionResultType]::ParameterName, 'Holding up at least one session that waits for a lock')
            [CompletionResult]::new('--root-blocker', '--root-blocker', [CompletionResultType]::ParameterName, 'Holding up others while not waiting for a lock itself: the head of a lock chain, the session to end in a pile-up')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Act on every session when no filter is given (otherwise refused, exit 4)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation on a terminal')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation on a terminal')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Show the matched sessions and the SQL that would run; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the matched sessions and the SQL that would run; change nothing')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait until the signalled sessions are gone (terminate) or their queries stopped (cancel)')
            [CompletionResult]::new('--audit-dry-run', '--audit-dry-run', [CompletionResultType]::ParameterName, 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)')
            [CompletionResult]::new('--server-log', '--server-log', [CompletionResultType]::ParameterName, 'Also leave one LOG line per run in the server''s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on')
            [CompletionResult]::new('--cancel-first', '--cancel-first', [CompletionResultType]::ParameterName, 'Cancel the sessions'' queries first, wait --grace, then terminate only the sessions that still match the filters')
            [CompletionResult]::new('--lock', '--lock', [CompletionResultType]::ParameterName, 'Lock the --db databases against new connections before terminating their sessions; then report everything else that keeps DROP DATABASE from succeeding (prepared transactions, active logical slots, subscriptions, other backends): exit 0 only when nothing is left')
            [CompletionResult]::new('--rollback-prepared', '--rollback-prepared', [CompletionResultType]::ParameterName, 'With --lock: roll back the prepared transactions of the locked databases (each in its own database, through a connection opened before the lock), so that DROP DATABASE can succeed; without it they are only reported')
            [CompletionResult]::new('--pgbouncer-disable', '--pgbouncer-disable', [CompletionResultType]::ParameterName, 'After the pause, also DISABLE and KILL the databases on the poolers: their clients are refused at once instead of waiting (the drop workflow); unlock runs ENABLE and RESUME')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;lock' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Database to lock (repeatable)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role to stop from logging in: ALTER ROLE ... NOLOGIN (repeatable)')
            [CompletionResult]::new('--method', '--method', [CompletionResultType]::ParameterName, 'How databases are locked')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Give up when the DDL waits this long behind other transactions')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text')
            [CompletionResult]::new('--audit-log', '--audit-log', [CompletionResultType]::ParameterName, 'Append one JSON line per session or object acted on, after the server answered: to a file (created with mode 0600; each line one atomic append, so concurrent runs never interleave), to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). pgkick acts on nothing when it cannot write there')
            [CompletionResult]::new('--audit-facility', '--audit-facility', [CompletionResultType]::ParameterName, 'The syslog facility of --audit-log syslog')
            [CompletionResult]::new('--pgbouncer', '--pgbouncer', [CompletionResultType]::ParameterName, 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. PAUSE the --db databases there before the lock, so their clients wait instead of failing; the lock records it and unlock resumes them')
            [CompletionResult]::new('--pause-timeout', '--pause-timeout', [CompletionResultType]::ParameterName, 'How long PAUSE may wait for the transactions in flight; then the server backends that keep it from completing are terminated (keep it below PgBouncer''s query_wait_timeout, 120s by default, or the queued clients fail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Show the statements; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the statements; change nothing')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'Show what pgkick has locked in this cluster: what, how, by whom, since when')
            [CompletionResult]::new('--audit-dry-run', '--audit-dry-run', [CompletionResultType]::ParameterName, 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)')
            [CompletionResult]::new('--server-log', '--server-log', [CompletionResultType]::ParameterName, 'Also leave one LOG line per run in the server''s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on')
            [CompletionResult]::new('--pgbouncer-disable', '--pgbouncer-disable', [CompletionResultType]::ParameterName, 'After the pause, also DISABLE and KILL the databases on the poolers: their clients are refused at once instead of waiting (the drop workflow); unlock runs ENABLE and RESUME')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;unlock' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Database to unlock (repeatable)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role to unlock (repeatable)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Give up when the DDL waits this long behind other transactions')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why this is done (e.g. a ticket number): written into every audit record and the --server-log line; sent to the server only as a bind parameter, never as SQL text')
            [CompletionResult]::new('--audit-log', '--audit-log', [CompletionResultType]::ParameterName, 'Append one JSON line per session or object acted on, after the server answered: to a file (created with mode 0600; each line one atomic append, so concurrent runs never interleave), to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). pgkick acts on nothing when it cannot write there')
            [CompletionResult]::new('--audit-facility', '--audit-facility', [CompletionResultType]::ParameterName, 'The syslog facility of --audit-log syslog')
            [CompletionResult]::new('--pgbouncer', '--pgbouncer', [CompletionResultType]::ParameterName, 'A PgBouncer in front of the server, as a conninfo string or URI for its admin console (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler. list: each server session of a pooler gains a `pooler` object (its client). unlock: RESUME the databases there too (the poolers recorded by the lock are resumed anyway)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Show the statements; change nothing')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the statements; change nothing')
            [CompletionResult]::new('--audit-dry-run', '--audit-dry-run', [CompletionResultType]::ParameterName, 'With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run writes none)')
            [CompletionResult]::new('--server-log', '--server-log', [CompletionResultType]::ParameterName, 'Also leave one LOG line per run in the server''s log, next to its "terminating connection" lines: pgkick, the role, the reason and the pids ended (or the objects locked). When the role may not, pgkick says so once and goes on')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;conninfo' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Database server host or socket directory [env: PGHOST]')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Database server port [env: PGPORT]')
            [CompletionResult]::new('-U', '-U ', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Database user name [env: PGUSER]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--dbname', '--dbname', [CompletionResultType]::ParameterName, 'Database to connect to: a name, a key=value conninfo string or a postgresql:// URI [env: PGDATABASE; default: postgres]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--connect', '--connect', [CompletionResultType]::ParameterName, 'Also connect, and report the server version, the address used, whether TLS is in use and the authenticated user')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('--no-password', '--no-password', [CompletionResultType]::ParameterName, 'Never prompt for a password')
            [CompletionResult]::new('-W', '-W ', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Prompt for a password before connecting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Shorthand for --output json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors (the exit status tells the outcome)')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'pgkick;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the sessions that match the filters')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel the current query of the matching sessions (pg_cancel_backend)')
            [CompletionResult]::new('terminate', 'terminate', [CompletionResultType]::ParameterValue, 'Terminate the matching sessions (pg_terminate_backend)')
            [CompletionResult]::new('lock', 'lock', [CompletionResultType]::ParameterValue, 'Keep new connections out of databases, or stop roles from logging in')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Undo exactly what `pgkick lock` changed')
            [CompletionResult]::new('conninfo', 'conninfo', [CompletionResultType]::ParameterValue, 'Show where pgkick would connect and where each setting comes from, without connecting')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'pgkick;help;list' {
            break
        }
        'pgkick;help;cancel' {
            break
        }
        'pgkick;help;terminate' {
            break
        }
        'pgkick;help;lock' {
            break
        }
        'pgkick;help;unlock' {
            break
        }
        'pgkick;help;conninfo' {
            break
        }
        'pgkick;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
