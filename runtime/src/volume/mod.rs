//! Local-driver named volumes.
