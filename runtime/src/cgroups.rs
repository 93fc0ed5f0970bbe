//! (placeholder: owned by the cgroups work)
