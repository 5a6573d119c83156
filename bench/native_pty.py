#!/usr/bin/env python3
"""The native side of Burrow's benchmarks: OpenSSH's `ssh` through a pseudo-terminal.

Runs a command (the `ssh` client, started by the benchmark with sshpass and its options) on a
new pty of the given size, as a person's terminal would, and measures:

- ``prompt``: from starting the command to the shell prompt (``--prompt`` regex) in its output;
- ``echo``: after the prompt, ``--keys`` single keystrokes, each written to the pty and timed
  until its echo comes back (the line is cleared with Ctrl-U every ``--clear-every`` keys, not
  timed); the latencies are printed in milliseconds.

Prints one JSON object on stdout. Used by bench/bench.spec.ts; it asserts nothing.
"""

import argparse
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def read_until(fd, pattern, buffer, timeout):
    """Reads from fd into buffer until pattern matches it; returns the match time or None."""
    deadline = time.perf_counter() + timeout
    while True:
        if pattern.search(buffer[0]):
            return time.perf_counter()
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return None
        if not chunk:
            return None
        buffer[0] += chunk.decode("utf-8", "replace")


def drain(fd, quiet_for):
    """Reads and drops output until nothing arrives for quiet_for seconds."""
    while True:
        ready, _, _ = select.select([fd], [], [], quiet_for)
        if not ready:
            return
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", required=True, help="regex of the shell prompt")
    parser.add_argument("--keys", type=int, default=0, help="keystrokes to time after the prompt")
    parser.add_argument("--key", default="a", help="the character typed")
    parser.add_argument("--clear-every", type=int, default=100)
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", args.rows, args.cols, 0, 0))
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    result = {"ok": False}
    buffer = [""]
    try:
        prompt = re.compile(args.prompt)
        at = read_until(master, prompt, buffer, args.timeout)
        if at is None:
            result["error"] = "no prompt within %.0f s; output: %r" % (args.timeout, buffer[0][-2000:])
            return result
        result["prompt_ms"] = (at - started) * 1000.0
        drain(master, 0.3)
        latencies = []
        key = args.key.encode()
        for index in range(args.keys):
            if index and args.clear_every and index % args.clear_every == 0:
                os.write(master, b"\x15")
                drain(master, 0.2)
            buffer[0] = ""
            sent = time.perf_counter()
            os.write(master, key)
            at = read_until(master, re.compile(re.escape(args.key)), buffer, 10.0)
            if at is None:
                result["error"] = "no echo for key %d" % index
                return result
            latencies.append((at - sent) * 1000.0)
        result["echo_ms"] = latencies
        result["ok"] = True
        return result
    finally:
        try:
            os.write(master, b"\x15exit\r")
        except OSError:
            pass
        try:
            child.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        os.close(master)


if __name__ == "__main__":
    outcome = main()
    print(json.dumps(outcome))
    sys.exit(0 if outcome.get("ok") else 1)
