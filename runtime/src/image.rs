//! (placeholder: owned by the image work)
