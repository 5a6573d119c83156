//! Placeholder for the `ssh` module.
