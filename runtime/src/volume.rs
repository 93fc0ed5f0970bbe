//! (placeholder: owned by the volume work)
