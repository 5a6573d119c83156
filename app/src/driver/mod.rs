//! Placeholder for the `driver` module.
