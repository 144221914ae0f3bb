//! Many servers at once, the machinery: which servers a run names (`servers.rs`: `-d`
//! repeated, `--servers FILE`, `--each-host`, each once, with its label and resolved
//! settings), running one piece of work per server on at most `--jobs` threads
//! (`runner.rs`), and the rendezvous where every server waits at the gate for the guards of
//! the whole run (`rendezvous.rs`). What runs on each server, and the guards themselves, are
//! `ops::many`'s.

mod rendezvous;
pub mod runner;
mod servers;

pub use rendezvous::{Rendezvous, Seated, Verdict};
pub use servers::{file_values, plan, single, Member, Source};
