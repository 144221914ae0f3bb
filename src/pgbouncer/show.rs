//! What PgBouncer's `SHOW SERVERS` and `SHOW CLIENTS` say, read by column name, and the join
//! that tells which client is behind a server connection. Pure: rows in, values out.
//!
//! Columns by version (the admin console grows columns at the end, so rows are read by name
//! and a missing column is `None`): `remote_pid` is in SHOW SERVERS since 1.7 (the backend's
//! pid, from its BackendKeyData); `ptr` and `link` since the first releases;
//! `application_name` in SHOW CLIENTS and SHOW SERVERS since 1.18.

use std::collections::BTreeMap;

use serde::Serialize;

/// One row of a SHOW command: column name to value (`None` for NULL or a missing column).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowRow(pub BTreeMap<String, Option<String>>);

impl ShowRow {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.0.get(column).and_then(|v| v.as_deref())
    }

    /// A count column; 0 when missing or not a number.
    pub fn count(&self, column: &str) -> u64 {
        self.get(column).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// A 0/1 column is set.
    pub fn flag(&self, column: &str) -> bool {
        self.get(column).is_some_and(|v| v != "0")
    }

    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> ShowRow {
        ShowRow(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        )
    }
}

/// A server connection of the pooler (a row of SHOW SERVERS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConn {
    pub database: String,
    pub user: String,
    /// `active` (linked to a client: in a transaction, in transaction pooling), `idle`,
    /// `used`, `tested`, `new`.
    pub state: String,
    /// The backend's pid on the PostgreSQL server; 0 or `None` before login completes.
    pub remote_pid: Option<i32>,
    /// The `ptr` of the client it serves, empty when none.
    pub link: Option<String>,
}

impl ServerConn {
    pub fn from_row(row: &ShowRow) -> ServerConn {
        ServerConn {
            database: row.get("database").unwrap_or_default().to_string(),
            user: row.get("user").unwrap_or_default().to_string(),
            state: row.get("state").unwrap_or_default().to_string(),
            remote_pid: row
                .get("remote_pid")
                .and_then(|p| p.parse().ok())
                .filter(|p| *p > 0),
            link: row
                .get("link")
                .filter(|l| !l.is_empty() && *l != "0x0")
                .map(str::to_string),
        }
    }

    /// Holds the pause of `database` back: serving a client, which in transaction pooling
    /// means a transaction is open.
    pub fn blocks_pause_of(&self, database: &str) -> bool {
        self.database == database && self.state == "active" && self.remote_pid.is_some()
    }
}

/// How many server connections a pool of a database may have (SHOW DATABASES: `pool_size`
/// plus `reserve_pool`); `None` when the pooler does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRoom(Option<u64>);

impl PoolRoom {
    pub fn of_database(row: &ShowRow) -> PoolRoom {
        PoolRoom(
            row.get("pool_size")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|size| size + row.count("reserve_pool")),
        )
    }
}

/// The server connection states of SHOW POOLS.
const SERVER_STATES: [&str; 5] = ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"];

/// Whether the pools of `database` (rows of SHOW POOLS, one per user) are logging in a server
/// connection or about to: a server connection in login (`sv_login`), or a client waiting
/// (`cl_waiting`) while the pool has no idle connection for it and room for another. PAUSE
/// closes a connection still in login, and PgBouncer (1.18 and later) then counts that as a
/// failed login: until a later login succeeds, a client that needs a server connection while
/// the pool has none is refused with "server login has been failing" (`server_login_retry`),
/// which is what a pause must not cause.
pub fn pool_is_logging_in(pools: &[ShowRow], database: &str, room: PoolRoom) -> bool {
    pools
        .iter()
        .filter(|row| row.get("database") == Some(database))
        .any(|row| {
            let servers: u64 = SERVER_STATES.iter().map(|c| row.count(c)).sum();
            let can_grow = room.0.is_none_or(|most| servers < most);
            row.count("sv_login") > 0
                || (row.count("cl_waiting") > 0 && row.count("sv_idle") == 0 && can_grow)
        })
}

/// The client behind a server connection, as the pooler sees it (a row of SHOW CLIENTS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolerClient {
    /// An IP address, or `unix` for a unix-socket client.
    pub addr: Option<String>,
    pub port: Option<i32>,
    pub user: Option<String>,
    /// `null` before PgBouncer 1.18.
    pub application_name: Option<String>,
}

/// What `list --pgbouncer` adds to a session that is a pooler's server connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolerLink {
    /// The pooler, as its admin console's connection string without password.
    pub pooler: String,
    /// The server connection's state in the pooler.
    pub state: String,
    /// The linked client; `null` when the connection sits idle in the pool.
    pub client: Option<PoolerClient>,
}

/// The pooler's server connections by backend pid and user, each with the client it serves.
pub fn links(
    pooler: &str,
    servers: &[ShowRow],
    clients: &[ShowRow],
) -> BTreeMap<(i32, String), PoolerLink> {
    let by_ptr: BTreeMap<&str, &ShowRow> = clients
        .iter()
        .filter_map(|c| Some((c.get("ptr")?, c)))
        .collect();
    let mut out = BTreeMap::new();
    for row in servers {
        let server = ServerConn::from_row(row);
        let Some(pid) = server.remote_pid else {
            continue;
        };
        let client = server
            .link
            .as_deref()
            .and_then(|l| by_ptr.get(l))
            .map(|c| PoolerClient {
                addr: c.get("addr").map(str::to_string),
                port: c.get("port").and_then(|p| p.parse().ok()),
                user: c.get("user").map(str::to_string),
                application_name: c
                    .get("application_name")
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            });
        out.insert(
            (pid, server.user.clone()),
            PoolerLink {
                pooler: pooler.to_string(),
                state: server.state,
                client,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_logs_in_while_a_server_is_in_login_or_a_client_waits_with_room_to_grow() {
        let pool = |db: &str, login: &str, waiting: &str, active: &str, idle: &str| {
            ShowRow::of(&[
                ("database", db),
                ("user", "app"),
                ("cl_waiting", waiting),
                ("sv_active", active),
                ("sv_idle", idle),
                ("sv_login", login),
            ])
        };
        let room = PoolRoom::of_database(&ShowRow::of(&[
            ("name", "app"),
            ("pool_size", "3"),
            ("reserve_pool", "1"),
        ]));
        assert_eq!(room, PoolRoom(Some(4)));
        let unknown = PoolRoom::of_database(&ShowRow::default());
        assert_eq!(unknown, PoolRoom(None));
        let logging_in = |rows: &[ShowRow], room| pool_is_logging_in(rows, "app", room);
        assert!(!logging_in(&[pool("app", "0", "0", "1", "1")], room));
        assert!(logging_in(&[pool("app", "1", "0", "1", "0")], room));
        // A client waits, no idle connection, room for more: a login is coming.
        assert!(logging_in(&[pool("app", "0", "2", "1", "0")], room));
        assert!(logging_in(&[pool("app", "0", "2", "1", "0")], unknown));
        // An idle connection will serve it; a full pool logs in nothing.
        assert!(!logging_in(&[pool("app", "0", "2", "1", "1")], room));
        assert!(!logging_in(&[pool("app", "0", "2", "4", "0")], room));
        // One user's pool is enough; other databases and no pool do not count.
        assert!(logging_in(
            &[
                pool("app", "0", "0", "0", "0"),
                pool("app", "1", "0", "0", "0")
            ],
            room
        ));
        assert!(!logging_in(&[pool("other", "1", "1", "0", "0")], room));
        assert!(!logging_in(&[], room));
    }

    #[test]
    fn servers_are_linked_to_their_clients_by_ptr() {
        let servers = [
            ShowRow::of(&[
                ("database", "app"),
                ("user", "u"),
                ("state", "active"),
                ("ptr", "0x2"),
                ("link", "0x1"),
                ("remote_pid", "4242"),
            ]),
            ShowRow::of(&[
                ("database", "app"),
                ("user", "u"),
                ("state", "idle"),
                ("ptr", "0x3"),
                ("link", ""),
                ("remote_pid", "4343"),
            ]),
            // Still logging in: no pid yet.
            ShowRow::of(&[("database", "app"), ("state", "new"), ("remote_pid", "0")]),
        ];
        let clients = [ShowRow::of(&[
            ("user", "u"),
            ("addr", "127.0.0.1"),
            ("port", "50000"),
            ("ptr", "0x1"),
            ("application_name", "web"),
        ])];
        let links = links("host=/tmp port=6432", &servers, &clients);
        assert_eq!(links.len(), 2);
        let busy = &links[&(4242, "u".to_string())];
        assert_eq!(busy.state, "active");
        assert_eq!(
            busy.client,
            Some(PoolerClient {
                addr: Some("127.0.0.1".into()),
                port: Some(50000),
                user: Some("u".into()),
                application_name: Some("web".into()),
            })
        );
        assert_eq!(links[&(4343, "u".to_string())].client, None);
    }

    #[test]
    fn before_1_18_there_is_no_application_name() {
        let servers = [ShowRow::of(&[
            ("user", "u"),
            ("state", "active"),
            ("link", "0x1"),
            ("remote_pid", "7"),
        ])];
        let clients = [ShowRow::of(&[("ptr", "0x1"), ("addr", "unix")])];
        let link = &links("p", &servers, &clients)[&(7, "u".to_string())];
        let client = link.client.as_ref().unwrap();
        assert_eq!(client.application_name, None);
        assert_eq!(client.addr.as_deref(), Some("unix"));
    }

    #[test]
    fn only_active_connections_of_the_database_block_its_pause() {
        let row = |db: &str, state: &str| {
            ServerConn::from_row(&ShowRow::of(&[
                ("database", db),
                ("state", state),
                ("remote_pid", "9"),
            ]))
        };
        assert!(row("app", "active").blocks_pause_of("app"));
        assert!(!row("app", "idle").blocks_pause_of("app"));
        assert!(!row("other", "active").blocks_pause_of("app"));
    }
}
