#!/usr/bin/env python3
"""Records the byte streams the typeahead tests replay (`app/tests/typeahead.rs`).

Runs a program on a new 80x24 pty (TERM=xterm-256color), types a scripted session into it one
key at a time, waits after each key until the program has been quiet for a moment, and writes
the session as JSON: a list of {"in": hex} (a key as the terminal sends it) and {"out": hex}
(what the program wrote back) events, in order.

    python3 app/tests/typeahead/record.py bash app/tests/typeahead/bash.json

The recordings are committed; the tests do not need bash, zsh or vi.
"""

import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time

QUIET = 0.25
LEFT, RIGHT, BS, ENTER, ESC = "\x1b[D", "\x1b[C", "\x7f", "\r", "\x1b"

# Each session: the program to run, then the keys (strings are typed one character at a time;
# one-element lists are sent as one key).
SESSIONS = {
    "bash": (
        ["bash", "--norc", "--noprofile", "-i"],
        {"PS1": "demo@device:\\w\\$ "},
        ["echo hello", [BS], [BS], "lo", [LEFT], [LEFT], [RIGHT], [RIGHT], " world", [ENTER],
         "ls /nonexistent-dir", [ENTER], "printf 'a%.0s' {1..3}", [ENTER], "abc", ["\x15"],
         "echo done", [ENTER]],
    ),
    "password": (
        ["bash", "--norc", "--noprofile", "-i"],
        {"PS1": "demo@device:\\w\\$ "},
        ["read -s -p 'Password: ' pw; echo; echo length ${#pw}", [ENTER], "hunter2", [ENTER],
         "stty -echo; read line; stty echo; echo got ${#line}", [ENTER], "kumquat9", [ENTER],
         "echo ok", [ENTER]],
    ),
    "zsh": (
        ["zsh", "-f", "-i"],
        {"PROMPT": "%F{green}demo%f@device %~ %# ", "RPROMPT": "%F{blue}[zsh]%f"},
        ["echo hello", [BS], "o", [LEFT], [RIGHT], " there", [ENTER], "true", [ENTER],
         "echo bye", [ENTER]],
    ),
    "vi": (
        ["bash", "--norc", "--noprofile", "-i"],
        {"PS1": "demo@device:\\w\\$ "},
        ["vi -u NONE -N /tmp/typeahead-vi.txt", [ENTER], "ihello vi", [ESC], ":q!", [ENTER],
         "echo after", [ENTER]],
    ),
}


def drain(fd, events):
    """Reads until the program has been quiet for QUIET seconds."""
    chunk = b""
    while True:
        ready, _, _ = select.select([fd], [], [], QUIET)
        if not ready:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunk += data
    if chunk:
        events.append({"out": chunk.hex()})


def main():
    name, path = sys.argv[1], sys.argv[2]
    argv, extra_env, keys = SESSIONS[name]
    pid, fd = pty.fork()
    if pid == 0:
        env = {"TERM": "xterm-256color", "HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        env.update(extra_env)
        os.chdir("/tmp")
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    events = []
    time.sleep(0.5)
    drain(fd, events)
    for group in keys:
        for key in (group if isinstance(group, list) else list(group)):
            os.write(fd, key.encode())
            events.append({"in": key.encode().hex()})
            drain(fd, events)
    os.write(fd, b"exit\r")
    with open(path, "w") as out:
        json.dump(events, out, indent=0)
        out.write("\n")


if __name__ == "__main__":
    main()
