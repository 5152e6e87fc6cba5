//! The simulated model (helper fills this in).
