//! Running external commands with their output visible, and the xtask error type.
//!
//! Every command is echoed before it runs (`$ cargo …`), its output goes to the terminal as it
//! comes, and a failure names the command and its exit status. [`Cmd::run_capturing`] also keeps
//! the output lines so that callers can read test runners' summary lines; it still prints every
//! line as it arrives. Nothing here decides *what* to run.

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Everything that can make an xtask command fail.
#[derive(Debug, thiserror::Error)]
pub enum XtaskError {
    /// The command line of the xtask itself was wrong.
    #[error("{0}")]
    Usage(String),
    /// A program could not be started at all (usually: it is not installed).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line that was attempted.
        command: String,
        /// Why the operating system refused.
        source: std::io::Error,
    },
    /// A program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line that failed.
        command: String,
        /// Its exit status in words.
        status: String,
    },
    /// A prerequisite is missing and cannot be installed from here.
    #[error("{0}")]
    Missing(String),
    /// A file the xtask needs could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What the xtask was doing.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A command line to run, built like [`std::process::Command`] but printable.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
}

impl Cmd {
    /// Starts a command line with `program`.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            envs: Vec::new(),
        }
    }

    /// Starts a `cargo` command line, using the cargo that runs the xtask when known.
    pub fn cargo() -> Self {
        Self::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the command in `dir`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Sets one environment variable for the command.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Returns the command line as a shell-like string (for messages; not for a shell).
    pub fn display(&self) -> String {
        let mut line = self.program.to_string_lossy().into_owned();
        if line.ends_with("/cargo") {
            line = "cargo".to_owned();
        }
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            line.push(' ');
            if arg.is_empty() || arg.contains([' ', '"', '\'', '~', '*', '$']) {
                line.push('"');
                line.push_str(&arg.replace('"', "\\\""));
                line.push('"');
            } else {
                line.push_str(&arg);
            }
        }
        line
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    fn announce(&self) {
        match &self.dir {
            Some(dir) => println!("$ (cd {}) {}", dir.display(), self.display()),
            None => println!("$ {}", self.display()),
        }
        flush();
    }

    /// Runs the command with inherited standard streams; fails unless it exits with success.
    pub fn run(&self) -> Result<(), XtaskError> {
        self.announce();
        let status = self
            .command()
            .stdin(Stdio::null())
            .status()
            .map_err(|source| self.spawn_error(source))?;
        if status.success() {
            Ok(())
        } else {
            Err(XtaskError::Failed {
                command: self.display(),
                status: status.to_string(),
            })
        }
    }

    /// Runs the command with inherited standard streams, killing it when it runs past `limit`.
    pub fn run_with_timeout(&self, limit: Duration) -> Result<(), XtaskError> {
        self.announce();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let watch = Stopwatch::start();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(XtaskError::Failed {
                        command: self.display(),
                        status: status.to_string(),
                    });
                }
                Ok(None) if watch.elapsed() >= limit => {
                    // The child may have exited since `try_wait`; then there is nothing to kill.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(XtaskError::Failed {
                        command: self.display(),
                        status: format!("killed after {}", format_duration(limit)),
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(100)),
                Err(source) => return Err(self.spawn_error(source)),
            }
        }
    }

    /// Runs the command, printing its stdout and stderr as they arrive and also returning all
    /// their lines (interleaved in arrival order). The error on failure carries no output: it
    /// was already printed.
    pub fn run_capturing(&self) -> Result<Vec<String>, (XtaskError, Vec<String>)> {
        self.announce();
        let mut child = match self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(source) => return Err((self.spawn_error(source), Vec::new())),
        };
        let (sender, receiver) = mpsc::channel::<(bool, String)>();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(forward_lines(stdout, false, sender.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(forward_lines(stderr, true, sender.clone()));
        }
        drop(sender);
        let mut lines = Vec::new();
        for (is_stderr, line) in receiver {
            if is_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            lines.push(line);
        }
        for reader in readers {
            // A reader thread only ends by reaching end of file or a read error; either way the
            // lines it got are already forwarded, so its join result carries nothing more.
            let _ = reader.join();
        }
        flush();
        match child.wait() {
            Ok(status) if status.success() => Ok(lines),
            Ok(status) => Err((
                XtaskError::Failed {
                    command: self.display(),
                    status: status.to_string(),
                },
                lines,
            )),
            Err(source) => Err((self.spawn_error(source), lines)),
        }
    }

    /// Runs the command quietly and returns its trimmed stdout, or `None` when it cannot be
    /// started or fails. Used for probes such as `trunk --version`.
    pub fn probe(&self) -> Option<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn spawn_error(&self, source: std::io::Error) -> XtaskError {
        XtaskError::Spawn {
            command: self.display(),
            source,
        }
    }
}

/// Reads `stream` line by line on its own thread and sends each line (lossily decoded) on.
fn forward_lines(
    stream: impl Read + Send + 'static,
    is_stderr: bool,
    sender: mpsc::Sender<(bool, String)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if sender.send((is_stderr, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Flushes stdout and stderr so that our lines and the children's appear in order.
pub fn flush() {
    // Flushing a terminal or pipe can only fail when it is gone, and then nobody reads it.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Prints a note from the xtask itself (what it is about to do and why).
pub fn say(message: impl fmt::Display) {
    println!("xtask: {message}");
    flush();
}

/// Formats a duration as seconds with one decimal, or minutes and seconds past a minute.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Measures a step from its start.
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Returns the time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Reports whether the xtask runs as root (needed to install Debian packages itself).
pub fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .probe()
        .is_some_and(|uid| uid == "0")
}

/// Reports whether `program` can be found on `PATH` (or exists, when given as a path).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
