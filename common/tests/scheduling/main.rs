//! Scheduling scenarios on the pure core: every scenario of palantir's extender tests (its
//! reference spec §15.1), and what palantir never tested (FIFO, release, replacement,
//! restart recovery, quirk fixes). Each test reads as a story over a small cluster.

mod feed;
mod harness;
mod palantir;
mod queues;
mod sparkgang;
