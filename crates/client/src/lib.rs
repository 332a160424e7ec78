//! Guildhall client SDK.
