//! Trace files (SPEC §7).
