//! (placeholder: owned by the logs work)
