//! The Files feature outside the SSH glue: the browser's end of transfers and the figures the
//! panel shows. The SFTP protocol side is [`crate::ssh::sftp`]; the panel is
//! [`crate::components::files`].
//!
//! - [`progress`]: speed over a sliding window, time left, sizes, dates and modes in words
//!   (plain Rust, native tests).
//! - [`browser`]: reading a `File` in slices as it is uploaded, and saving a
//!   download as it arrives (File System Access API, a service-worker stream, or a small `Blob`).

pub mod browser;
pub mod progress;
