//! Tests of the SFTP layer's pure parts: paths, the order of a listing, and the words an
//! operator reads for each failure.

use super::*;
use russh_sftp::protocol::Status;

fn status(code: StatusCode, message: &str) -> SftpError {
    SftpError::Status(Status {
        id: 1,
        status_code: code,
        error_message: message.to_owned(),
        language_tag: "en".to_owned(),
    })
}

#[test]
fn paths_join_and_climb() {
    assert_eq!(join("/home/u", "a.txt"), "/home/u/a.txt");
    assert_eq!(join("/", "etc"), "/etc");
    assert_eq!(parent("/home/u"), "/home");
    assert_eq!(parent("/home/u/"), "/home");
    assert_eq!(parent("/home"), "/");
    assert_eq!(parent("/"), "/");
    assert!(valid_name("notes.txt"));
    for bad in ["", ".", "..", "a/b"] {
        assert!(!valid_name(bad), "{bad:?}");
    }
}

#[test]
fn directories_come_first_then_names() {
    let row = |name: &str, kind| Entry {
        name: name.into(),
        kind,
        link: false,
        size: 0,
        mtime: None,
        mode: None,
    };
    let mut rows = vec![
        row("b.txt", Kind::File),
        row("zdir", Kind::Dir),
        row("a.txt", Kind::File),
        row("adir", Kind::Dir),
    ];
    sort_entries(&mut rows);
    let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["adir", "zdir", "a.txt", "b.txt"]);
    assert_eq!(kind_of(Some(0o040755)), Kind::Dir);
    assert_eq!(kind_of(Some(0o100644)), Kind::File);
    assert_eq!(kind_of(Some(0o120777)), Kind::Other);
    assert!(kind_link(Some(0o120777)));
}

#[test]
fn errors_read_as_the_operator_needs_them() {
    assert_eq!(
        classify(
            status(StatusCode::NoSuchFile, "No such file"),
            "x",
            "/a",
            false
        ),
        FilesError::NotFound { path: "/a".into() }
    );
    assert_eq!(
        classify(status(StatusCode::PermissionDenied, ""), "x", "/a", false),
        FilesError::PermissionDenied { path: "/a".into() }
    );
    assert_eq!(
        classify(SftpError::Timeout, "x", "/a", true),
        FilesError::ConnectionLost
    );
    assert_eq!(
        classify(
            SftpError::UnexpectedBehavior("sender dropped".into()),
            "x",
            "/a",
            false
        ),
        FilesError::ConnectionLost
    );
    let no_server = FilesError::NoServer {
        detail: "its SSH server refused the sftp subsystem".into(),
    }
    .user_message();
    assert!(
        no_server.contains("SFTP is missing on the device"),
        "{no_server}"
    );
    assert!(no_server.contains("openssh-sftp-server"), "{no_server}");
    assert!(no_server.contains("Dropbear"), "{no_server}");
}

#[test]
fn failures_say_what_is_left_behind() {
    let lost = Failure {
        error: FilesError::ConnectionLost,
        done: 10,
        partial: Some("/home/u/big.bin.partial".into()),
    };
    assert!(
        lost.user_message()
            .contains("kept as /home/u/big.bin.partial")
    );
    let cancelled = Failure {
        error: FilesError::Cancelled,
        done: 10,
        partial: None,
    };
    assert_eq!(cancelled.user_message(), "Cancelled. Nothing was kept.");
}
