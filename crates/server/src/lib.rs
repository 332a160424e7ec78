//! Guildhall server.
