//! `burrow demo` end to end: its embedded SSH device, reached with the native `ssh` client
//! (password through `sshpass`) via a source agent and the demo's own service and agent. The
//! demo prints a Device-mode link (`#thing=…&user=…`) and opens no tunnel itself: the tests open
//! one for the printed thing with the real `aws` CLI, as the page's Connect does through the
//! tunnel API, and the device gets its token by notification.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Proc, burrow_bin, run, wait_connected};

/// What the demo printed.
struct Demo {
    proc: Proc,
    endpoint: String,
    source_token: String,
    user: String,
    password: String,
}

/// Starts `burrow demo` on a free port and reads its announcement.
fn start_demo() -> Demo {
    start_demo_with(&[])
}

/// [`start_demo`] with extra flags.
fn start_demo_with(extra: &[&str]) -> Demo {
    let mut cmd = Command::new(burrow_bin());
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let mut proc = Proc::spawn("burrow demo", cmd);
    let open = proc.wait_line("'burrow demo: open'", |l| {
        l.starts_with("burrow demo: open ")
    });
    let link = open.trim_start_matches("burrow demo: open ").trim();
    let (base, fragment) = link.split_once("/#").expect("a fragment in the link");
    let endpoint = base.replacen("http://", "ws://", 1);
    let param = |key: &str| {
        fragment
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
            .map(percent_decode)
            .unwrap_or_else(|| panic!("no {key} in {link}"))
    };
    let thing = param("thing");
    assert!(
        !fragment.contains("token"),
        "the demo link carries no token: {link}"
    );
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("the service's address");
    let opened = run(
        "aws iotsecuretunneling open-tunnel",
        common::aws::cli(
            addr,
            "us-east-1",
            common::aws::TEST_KEY,
            Path::new("/dev/null"),
            &[
                "open-tunnel",
                "--destination-config",
                &format!("thingName={thing},services=SSH"),
            ],
        ),
        Duration::from_secs(60),
    );
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&opened.stdout).expect("the CLI's JSON answer");
    let source_token = answer["sourceAccessToken"]
        .as_str()
        .expect("a source token")
        .to_owned();
    let (user, password) = if extra.contains(&"--device") {
        // An existing server's accounts are its own: the demo prints none.
        proc.wait_line("'burrow demo: device'", |l| {
            l.starts_with("burrow demo: device ")
        });
        (String::new(), String::new())
    } else {
        let user = proc
            .wait_line("'burrow demo: user'", |l| {
                l.starts_with("burrow demo: user ")
            })
            .trim_start_matches("burrow demo: user ")
            .to_owned();
        assert_eq!(param("user"), user);
        let password = proc
            .wait_line("'burrow demo: password'", |l| {
                l.starts_with("burrow demo: password ")
            })
            .trim_start_matches("burrow demo: password ")
            .to_owned();
        (user, password)
    };
    // The in-process destination agent announces itself like a standalone one.
    wait_connected(&mut proc);
    Demo {
        proc,
        endpoint,
        source_token,
        user,
        password,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// A source agent for the demo's tunnel; returns it and its local port.
fn source_for(demo: &Demo) -> (Proc, u16) {
    let mut source = common::agent(
        "source agent",
        &[
            "--mode",
            "source",
            "--endpoint",
            &demo.endpoint,
            "--token",
            &demo.source_token,
            "-s",
            "SSH=0",
        ],
    );
    let port = common::wait_listening(&mut source);
    wait_connected(&mut source);
    (source, port)
}

/// `sshpass -e ssh …` with the password in the environment (not on the command line).
fn ssh_with_password(
    port: u16,
    user: &str,
    password: &str,
    extra: &[&str],
    remote: &str,
) -> Command {
    let mut cmd = Command::new("sshpass");
    cmd.env("SSHPASS", password).args([
        "-e",
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "LogLevel=ERROR",
        "-p",
    ]);
    cmd.arg(port.to_string())
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .arg(remote);
    cmd
}

#[test]
fn the_demo_device_runs_commands_for_the_password() {
    let mut demo = start_demo();
    // The device's agent got its token by MQTT notification, not on its command line.
    demo.proc.wait_line("the device's notification", |l| {
        l == "burrow agent: tunnel #1 notified (services: SSH)"
    });
    let (_source, port) = source_for(&demo);

    let out = run(
        "ssh to the demo device",
        ssh_with_password(
            port,
            &demo.user,
            &demo.password,
            &[],
            "echo hi-from-$(whoami); echo oops >&2; exit 3",
        ),
        Duration::from_secs(60),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hi-from-{}\n", demo.user)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3), "the exit status travels back");

    // A PTY session (ssh -tt) gets a real terminal of the client's type.
    let mut cmd = ssh_with_password(
        port,
        &demo.user,
        &demo.password,
        &["-tt"],
        "tty; echo term=$TERM; echo size=$(stty size)",
    );
    cmd.env("TERM", "xterm-256color");
    let out = run("ssh with a PTY", cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "no PTY: {text:?}");
    assert!(text.contains("term=xterm-256color"), "wrong TERM: {text:?}");
    // Without a terminal of its own, ssh asks for no size: the device's default applies.
    assert!(text.contains("size=24 80"), "wrong size: {text:?}");
}

#[test]
fn the_demo_device_refuses_a_wrong_password() {
    let demo = start_demo();
    let (_source, port) = source_for(&demo);
    let out = run(
        "ssh with a wrong password",
        ssh_with_password(
            port,
            &demo.user,
            "not-the-password",
            &["-o", "NumberOfPasswordPrompts=1"],
            "true",
        ),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "a wrong password was accepted");
}

#[test]
fn interrupting_the_demo_stops_everything() {
    let mut demo = start_demo();
    let (_source, port) = source_for(&demo);
    let mut session = Proc::spawn(
        "ssh",
        ssh_with_password(
            port,
            &demo.user,
            &demo.password,
            &[],
            "echo session-up; exec sleep 600",
        ),
    );
    session.wait_line("'session-up'", |l| l == "session-up");
    let children = common::descendants(demo.proc.pid());
    assert!(
        !children.is_empty(),
        "the session's program is not a child of the demo"
    );

    let out = run(
        "kill -INT",
        {
            let mut cmd = Command::new("kill");
            cmd.args(["-INT", &demo.proc.pid().to_string()]);
            cmd
        },
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    let status = demo.proc.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "the demo exited with {status}:\n{}",
        demo.proc.log()
    );
    // The session's shell died with the demo.
    for pid in children {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z");
        assert!(!alive, "process {pid} outlived the demo: {state}");
    }
    let status = session.wait_exit(Duration::from_secs(30));
    assert!(
        !status.success(),
        "the ssh session did not end with the demo"
    );
}

#[test]
fn the_demo_can_front_an_existing_sshd() {
    let sshd = common::Sshd::start();
    let device = format!("127.0.0.1:{}", sshd.port);
    let demo = start_demo_with(&["--device", &device]);
    assert!(
        demo.proc
            .log()
            .contains(&format!("burrow demo: device {device}"))
    );
    let (_source, port) = source_for(&demo);
    let out = run(
        "ssh to the existing sshd",
        common::ssh(port, &sshd.keys[0], "echo via-demo-$(whoami)"),
        Duration::from_secs(60),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("via-demo-{}\n", common::USER),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_device_follows_window_changes() {
    let demo = start_demo();
    let (_source, port) = source_for(&demo);
    // The remote side waits (bounded) for its terminal to become 40x100.
    let dir = common::TempDir::new("winch");
    let waiter = dir.path().join("wait-for-size.sh");
    std::fs::write(
        &waiter,
        "echo ready; i=0\n\
         while [ \"$(stty size)\" != '40 100' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
         echo size=$(stty size)\n",
    )
    .expect("write the remote script");
    // ssh reads its window size from its standard input: `script` gives it a terminal there.
    // Resizing that terminal and telling ssh (SIGWINCH) sends a window-change request, which
    // the device applies to its own PTY.
    let inner = format!(
        "sshpass -e ssh -tt -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o PubkeyAuthentication=no -o PreferredAuthentications=password -o LogLevel=ERROR \
         -p {port} {user}@127.0.0.1 sh {script}",
        user = demo.user,
        script = waiter.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &inner, "/dev/null"])
        .env("SSHPASS", &demo.password)
        .env("TERM", "xterm");
    let mut session = Proc::spawn("script ssh -tt", cmd);
    // Terminal output may carry a stray NUL and CR around the word.
    session.wait_line("'ready'", |l| l.contains("ready"));
    let ssh_pid = common::descendants(session.pid())
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ssh")
        })
        .expect("the ssh process");
    let tty = std::fs::read_link(format!("/proc/{ssh_pid}/fd/0")).expect("ssh's terminal");
    let resize = run(
        "stty",
        {
            let mut cmd = Command::new("stty");
            cmd.arg("-F").arg(&tty).args(["rows", "40", "cols", "100"]);
            cmd
        },
        Duration::from_secs(10),
    );
    assert!(
        resize.status.success(),
        "stty: {}",
        String::from_utf8_lossy(&resize.stderr)
    );
    let signal = run(
        "kill -WINCH",
        {
            let mut cmd = Command::new("kill");
            cmd.args(["-WINCH", &ssh_pid.to_string()]);
            cmd
        },
        Duration::from_secs(10),
    );
    assert!(signal.status.success());
    let line = session.wait_line("'size='", |l| l.contains("size="));
    assert!(line.trim_end().ends_with("size=40 100"), "{line:?}");
}
