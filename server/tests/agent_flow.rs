//! Flow control of `burrow agent`: a local client that stops reading while the far side sends a
//! lot must not make either agent buffer without bound, and nothing may be lost once it reads.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::{Serve, destination_agent, peak_rss_kib, source_agent};

/// Bytes the device sends: far more than the agents may hold.
const TOTAL: u64 = 192 * 1024 * 1024;
/// The most an agent may ever hold resident (its baseline is a few MiB; its queues a few more).
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// The byte at offset `i` of the stream: the little-endian bytes of `i / 8`, so that any loss,
/// duplication or reordering shows.
fn pattern_byte(i: u64) -> u8 {
    (i / 8).to_le_bytes()[(i % 8) as usize]
}

/// What the device thread reports.
enum Report {
    /// A write made no progress for the write timeout: the pipeline is full.
    Stalled { written: u64 },
    /// Everything was written.
    Done { written: u64 },
}

/// A "device" that accepts one connection and writes [`TOTAL`] pattern bytes into it.
fn start_device() -> (u16, mpsc::Receiver<Report>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the device");
    let port = listener.local_addr().expect("device address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept the agent");
        socket
            .set_write_timeout(Some(Duration::from_secs(3)))
            .expect("write timeout");
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        let mut stalled = false;
        while written < TOTAL {
            let n = (TOTAL - written).min(buf.len() as u64) as usize;
            for (k, byte) in buf[..n].iter_mut().enumerate() {
                *byte = pattern_byte(written + k as u64);
            }
            let mut off = 0;
            while off < n {
                match socket.write(&buf[off..n]) {
                    Ok(m) => off += m,
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        if !stalled {
                            stalled = true;
                            let _receiver_gone = tx.send(Report::Stalled {
                                written: written + off as u64,
                            });
                        }
                    }
                    Err(err) => panic!("device write failed: {err}"),
                }
            }
            written += n as u64;
        }
        let _receiver_gone = tx.send(Report::Done { written });
        // Dropping the socket ends the stream; the end travels as a reset after the data.
    });
    (port, rx)
}

#[test]
fn a_client_that_stops_reading_keeps_the_agents_bounded() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let (device_port, reports) = start_device();
    let destination = destination_agent(
        &serve,
        &tunnel,
        &format!("SSH=127.0.0.1:{device_port}"),
        &[],
    );
    let (source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    // Connect and read nothing until the device is stuck (or done, if everything on the way
    // fits, which it must not do inside the agents).
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect to the source agent");
    let first = reports
        .recv_timeout(Duration::from_secs(120))
        .expect("the device neither stalled nor finished");
    let in_flight = match first {
        Report::Stalled { written } => written,
        Report::Done { written } => written,
    };
    let source_peak = peak_rss_kib(source.pid());
    let destination_peak = peak_rss_kib(destination.pid());
    eprintln!(
        "flow control: {} MiB in flight when the device stalled; peak RSS source {} MiB, \
         destination {} MiB, service {} MiB",
        in_flight / (1024 * 1024),
        source_peak / 1024,
        destination_peak / 1024,
        peak_rss_kib(serve.proc.pid()) / 1024,
    );
    assert!(
        matches!(first, Report::Stalled { .. }),
        "the device wrote all {TOTAL} bytes to a client that reads nothing"
    );
    assert!(
        source_peak < RSS_BOUND_KIB,
        "source agent peak RSS {source_peak} KiB"
    );
    assert!(
        destination_peak < RSS_BOUND_KIB,
        "destination agent peak RSS {destination_peak} KiB"
    );

    // Now read everything: all of it arrives, in order, then the end of the stream.
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0u64;
    loop {
        let n = client.read(&mut buf).expect("read through the tunnel");
        if n == 0 {
            break;
        }
        for (k, &byte) in buf[..n].iter().enumerate() {
            let at = received + k as u64;
            assert_eq!(byte, pattern_byte(at), "wrong byte at offset {at}");
        }
        received += n as u64;
    }
    assert_eq!(received, TOTAL);
    let source_peak = peak_rss_kib(source.pid());
    let destination_peak = peak_rss_kib(destination.pid());
    eprintln!(
        "flow control: after {} MiB, peak RSS source {} MiB, destination {} MiB",
        TOTAL / (1024 * 1024),
        source_peak / 1024,
        destination_peak / 1024,
    );
    assert!(
        source_peak < RSS_BOUND_KIB,
        "source agent peak RSS {source_peak} KiB"
    );
    assert!(
        destination_peak < RSS_BOUND_KIB,
        "destination agent peak RSS {destination_peak} KiB"
    );
}

#[test]
fn a_device_that_stops_reading_keeps_the_agents_bounded() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // The device accepts and reads nothing until told to.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the device");
    let device_port = listener.local_addr().expect("device address").port();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let device = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept the agent");
        go_rx.recv().expect("the signal to read");
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let mut buf = vec![0u8; 256 * 1024];
        let mut received = 0u64;
        loop {
            let n = socket.read(&mut buf).expect("device read");
            if n == 0 {
                return received;
            }
            for (k, &byte) in buf[..n].iter().enumerate() {
                let at = received + k as u64;
                assert_eq!(byte, pattern_byte(at), "wrong byte at offset {at}");
            }
            received += n as u64;
        }
    });
    let destination = destination_agent(
        &serve,
        &tunnel,
        &format!("SSH=127.0.0.1:{device_port}"),
        &[],
    );
    let (source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    // The client writes until a write makes no progress for a while (the pipeline is full).
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect to the source agent");
    client
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("write timeout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    let mut stalled_at = None;
    while written < TOTAL {
        let n = (TOTAL - written).min(buf.len() as u64) as usize;
        for (k, byte) in buf[..n].iter_mut().enumerate() {
            *byte = pattern_byte(written + k as u64);
        }
        let mut off = 0;
        while off < n {
            match client.write(&buf[off..n]) {
                Ok(m) => off += m,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stalled_at.is_none() {
                        stalled_at = Some(written + off as u64);
                        let source_peak = peak_rss_kib(source.pid());
                        let destination_peak = peak_rss_kib(destination.pid());
                        eprintln!(
                            "reverse flow control: {} MiB in flight at the stall; peak RSS \
                             source {} MiB, destination {} MiB",
                            (written + off as u64) / (1024 * 1024),
                            source_peak / 1024,
                            destination_peak / 1024,
                        );
                        assert!(source_peak < RSS_BOUND_KIB, "source {source_peak} KiB");
                        assert!(
                            destination_peak < RSS_BOUND_KIB,
                            "destination {destination_peak} KiB"
                        );
                        // Now let the device read: the rest must flow.
                        go_tx.send(()).expect("device thread");
                        client
                            .set_write_timeout(Some(Duration::from_secs(60)))
                            .expect("write timeout");
                    }
                }
                Err(err) => panic!("client write failed: {err}"),
            }
        }
        written += n as u64;
    }
    assert!(
        stalled_at.is_some(),
        "all {TOTAL} bytes were taken while the device read nothing"
    );
    drop(client);
    let received = device.join().expect("device thread");
    assert_eq!(received, TOTAL);
    let source_peak = peak_rss_kib(source.pid());
    let destination_peak = peak_rss_kib(destination.pid());
    assert!(source_peak < RSS_BOUND_KIB, "source {source_peak} KiB");
    assert!(
        destination_peak < RSS_BOUND_KIB,
        "destination {destination_peak} KiB"
    );
}
