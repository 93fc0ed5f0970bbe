//! (placeholder: owned by the launch work)
