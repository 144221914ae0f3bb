//! What a statement over pg_stat_activity carries besides the sessions the filter selects.
//! Each part costs the server parsing and planning in every new backend, whether or not it
//! finds anything, so a part is in the statement only when the run needs it.
//!
//! A find never starts with the lock graph: its statement says whether any backend waits for
//! a lock, and whether a prepared transaction exists; only when something waits is the graph's
//! statement sent after it ([`Needs::graph`]), with the prepared transactions only when one
//! exists. A run where nothing waits sends one statement, a run where something waits two.

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
    /// The pid alone: the first statement of a lock-chain filter's find, whose sessions the
    /// graph's statement replaces when something waits (and when nothing waits, the filter
    /// selects none); only whether there are any is read.
    Pid,
}

/// The parts of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub rows: Rows,
    /// The lock graph (`graph`): each session's blocked_by, blocking and lock_wait_start, and
    /// the lock-chain filters. Only in a statement that follows one that said something waits
    /// ([`Needs::graph`]), and in the rechecks of a lock-chain filter's targets.
    pub graph: bool,
    /// With the graph: the prepared transactions that block someone, as rows of their own
    /// (only when the statement before said that a prepared transaction exists).
    pub prepared: bool,
    /// Without the graph: whether any backend waits for a lock, which is when the graph can
    /// tell something, and whether a prepared transaction exists (the `waits` column; see
    /// `statement::waits`).
    pub waits: bool,
    /// A lock-chain filter or `--tree` asks for the graph: it follows this statement when
    /// something waits. The statement then returns a row even when no session matches, so
    /// that `waits` is known (a prepared transaction can match a lock-chain filter alone).
    pub asks_graph: bool,
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
    /// lock-chain filters and `--tree` ask for the graph, which follows when something waits.
    pub fn first(filter: &Filter, server: &Server, tree: bool) -> Needs {
        let lock = server.has_blocking_pids();
        Needs {
            rows: if lock && !filter.chain.is_empty() {
                Rows::Pid
            } else {
                Rows::Full
            },
            graph: false,
            prepared: false,
            waits: lock,
            asks_graph: lock && (!filter.chain.is_empty() || tree),
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
    /// prepared transactions when one exists.
    pub fn graph(prepared: bool) -> Needs {
        Needs {
            rows: Rows::Full,
            graph: true,
            prepared,
            waits: false,
            asks_graph: false,
            facts: false,
            held: false,
            names: false,
        }
    }

    /// A recheck of targets: only what identifies them, and the graph only for the
    /// lock-chain filters, which must still hold (a target is never a prepared transaction).
    /// Their targets were found waiting: a statement asking whether anything still waits
    /// would most often be one more round trip.
    pub fn recheck(filter: &Filter, server: &Server) -> Needs {
        Needs {
            rows: Rows::Identity,
            graph: server.has_blocking_pids() && !filter.chain.is_empty(),
            prepared: false,
            waits: false,
            asks_graph: false,
            facts: false,
            held: false,
            names: false,
        }
    }

    /// The statement returns one row even when no session matches (its session columns
    /// null): what it tells besides the sessions is then known all the same. The first find
    /// of a run, and every find of a lock-chain filter (whether something waits tells whether
    /// the graph can select anything, a prepared transaction alone included); a later find
    /// without one needs nothing from a run that matches nobody.
    pub fn one_row(&self) -> bool {
        !self.graph && (self.facts || self.held || self.names || self.asks_graph)
    }
}
