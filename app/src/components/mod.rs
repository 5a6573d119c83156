//! Placeholder for the `components` module.
