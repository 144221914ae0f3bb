//! What a statement over pg_stat_activity carries besides the sessions the filter selects.
//! Each part costs the server parsing and planning in every new backend, whether or not it
//! finds anything, so a part is in the statement only when the run needs it.

use crate::filter::Filter;
use crate::server::Server;

/// Which columns of a session the rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every column of `Session`: what is listed, signalled and reported.
    Full,
    /// What `Session::same_backend` compares, and the query text for `--query`: the rechecks
    /// after a prompt, a lock or a grace period.
    Identity,
}

/// The parts of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub rows: Rows,
    /// The lock graph (`graph`): each session's blocked_by, blocking and lock_wait_start, and
    /// the lock-chain filters.
    pub graph: bool,
    /// With the graph: the prepared transactions that block someone, as rows of their own.
    pub prepared: bool,
    /// Without the graph: whether any backend waits for a lock, which is when the graph can
    /// tell something (the `waits` column; see `statement::waits`).
    pub waits: bool,
    /// The server's facts (the first statement of a run, before the server is known).
    pub facts: bool,
    /// With `--db`: whether something that is no session holds those databases (the first
    /// find of a run, so that a note on it costs a statement only when there is one).
    pub held: bool,
    /// Which of the databases and roles the filter names exist (the first find of a run): a
    /// typo'd name matches nothing, and must not pass for "nothing to do".
    pub names: bool,
}

impl Needs {
    /// The first statement of a run, for a server whose version is still unknown (then
    /// `server` is the assumed one, `Server::assumed_for_probe`) or was just detected. The
    /// graph is asked for by the lock-chain filters and by `--tree`; otherwise the statement
    /// tells whether anything waits, and the graph follows only then.
    pub fn first(filter: &Filter, server: &Server, tree: bool) -> Needs {
        let graph = server.has_blocking_pids() && (!filter.chain.is_empty() || tree);
        Needs {
            rows: Rows::Full,
            graph,
            prepared: graph,
            waits: !graph && server.has_blocking_pids(),
            facts: true,
            held: !filter.dbs.is_empty(),
            names: true,
        }
    }

    /// A later find in a run: the server is known, and so is what holds the databases.
    pub fn later(filter: &Filter, server: &Server) -> Needs {
        Needs {
            facts: false,
            held: false,
            names: false,
            ..Needs::first(filter, server, false)
        }
    }

    /// After a statement without the graph said that something waits: the graph, and the
    /// prepared transactions when the server can have any.
    pub fn graph(two_phase: bool) -> Needs {
        Needs {
            rows: Rows::Full,
            graph: true,
            prepared: two_phase,
            waits: false,
            facts: false,
            held: false,
            names: false,
        }
    }

    /// A recheck of targets: only what identifies them, and the graph only for the
    /// lock-chain filters (a target is never a prepared transaction).
    pub fn recheck(filter: &Filter, server: &Server) -> Needs {
        Needs {
            rows: Rows::Identity,
            graph: server.has_blocking_pids() && !filter.chain.is_empty(),
            prepared: false,
            waits: false,
            facts: false,
            held: false,
            names: false,
        }
    }
}
