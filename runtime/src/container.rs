//! (placeholder: owned by the container work)
