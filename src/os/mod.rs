//! What texcache asks of the operating system, in one place: files opened without blocking,
//! confined and read within bounds ([`mod@file`]), and the process generation that tells an object
//! made before a `fork` ([`fork`]).

pub(crate) mod file;
pub(crate) mod fork;
pub(crate) mod shm;
pub(crate) mod socket;
