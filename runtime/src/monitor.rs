//! (placeholder: owned by the monitor work)
