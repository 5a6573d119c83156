//! Placeholder for the `term` module.
