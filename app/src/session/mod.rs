//! Placeholder for the `session` module.
