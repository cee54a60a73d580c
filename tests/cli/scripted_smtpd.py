#!/usr/bin/env python3
"""A small scripted SMTP server for rundbrev's integration tests: standard library only.

It offers PIPELINING (RFC 2920) unless --no-pipelining, and answers the way a pipelining
server does: every complete command line in what it read is answered in order, and the
answers go out together. It misbehaves on demand:

  --refuse ADDRESS=REPLY      answer RCPT TO:<ADDRESS> with REPLY ("550 5.1.1 No such user");
                              may be given more than once
  --drop-after-354 ADDRESS:N  for the first N transactions with ADDRESS among their recipients,
                              answer DATA with 354 and close the connection at once

Like smtpd.py it saves every message it accepts in --dump DIR as <n>.eml (the DATA bytes,
dot-unstuffed, CRLF line ends), <n>.params ("MAIL <args>", then "RCPT <args>" per accepted
recipient) and, last, <n>.json ({"mail_from": ..., "rcpt_tos": [...]}), all before it answers
"250". It also writes, in DIR/../commands.log, one line per read that held commands: their verbs
in order, "MAIL RCPT DATA" for a pipelined group; and DIR/../sessions.log, one line per
connection. With --port 0 the OS picks the port; --ready-file receives it once the server
listens. SIGTERM or SIGINT stops it with exit status 0.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def append_line(path, line):
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def address_of(arg):
    """'FROM:<a@b> RET=HDRS' -> ('a@b', '<a@b> RET=HDRS')."""
    rest = re.sub(r"^(FROM|TO):\s*", "", arg, flags=re.IGNORECASE)
    m = re.match(r"<([^>]*)>", rest)
    return (m.group(1) if m else rest.split(" ")[0]), rest


class State:
    def __init__(self, args):
        self.args = args
        self.refuse = {}
        for rule in args.refuse:
            address, reply = rule.split("=", 1)
            self.refuse[address] = reply
        self.drops = {}
        for rule in args.drop_after_354:
            address, times = rule.rsplit(":", 1)
            self.drops[address] = int(times)
        self.counter = len([f for f in os.listdir(args.dump) if f.endswith(".json")])
        base = os.path.dirname(os.path.abspath(args.dump))
        self.commands_log = os.path.join(base, "commands.log")
        self.sessions_log = os.path.join(base, "sessions.log")


class Session(asyncio.Protocol):
    def __init__(self, state):
        self.state = state
        self.buffer = b""
        self.in_data = False
        self.data_lines = []
        self.reset()

    def reset(self):
        self.mail_from = None
        self.mail_args = None
        self.rcpts = []
        self.rcpt_args = []

    def connection_made(self, transport):
        self.transport = transport
        append_line(self.state.sessions_log, "connected")
        transport.write(b"220 localhost ESMTP scripted\r\n")

    def data_received(self, data):
        self.buffer += data
        out = []
        verbs = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if self.in_data:
                if line == b".":
                    self.in_data = False
                    out.append(self.deliver())
                else:
                    self.data_lines.append(line[1:] if line.startswith(b".") else line)
                continue
            text = line.decode("utf-8", "replace")
            verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
            verbs.append(verb)
            reply, close = self.command(verb, text)
            out.append(reply)
            if close:
                if verbs:
                    append_line(self.state.commands_log, " ".join(verbs))
                self.transport.write("".join(out).encode())
                self.hang_up()
                return
        if verbs:
            append_line(self.state.commands_log, " ".join(verbs))
        if out:
            self.transport.write("".join(out).encode())

    def hang_up(self):
        """Closes the connection at once: the end of the stream follows the last reply straight
        away, as from a server that hangs up, not after another turn of the event loop."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None and self.transport.get_write_buffer_size() == 0:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.transport.close()

    def command(self, verb, text):
        """The reply to one command line, and whether to close the connection after it."""
        arg = text[len(verb):].strip() if len(text) > len(verb) else ""
        if verb in ("EHLO", "HELO"):
            self.reset()
            if verb == "HELO":
                return "250 localhost\r\n", False
            lines = ["localhost"]
            if not self.state.args.no_pipelining:
                lines.append("PIPELINING")
            lines += ["8BITMIME", "SMTPUTF8", "SIZE 10240000"]
            return "".join(
                f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n" for i, l in enumerate(lines)
            ), False
        if verb == "MAIL":
            if self.mail_from is not None:
                return "503 5.5.1 Error: nested MAIL command\r\n", False
            self.mail_from, self.mail_args = address_of(arg[arg.index(":") + 1:] if ":" in arg else arg)
            return "250 2.1.0 Ok\r\n", False
        if verb == "RCPT":
            if self.mail_from is None:
                return "503 5.5.1 Error: need MAIL command\r\n", False
            address, args = address_of(arg[arg.index(":") + 1:] if ":" in arg else arg)
            refused = self.state.refuse.get(address)
            if refused:
                return refused + "\r\n", False
            self.rcpts.append(address)
            self.rcpt_args.append(args)
            return "250 2.1.5 Ok\r\n", False
        if verb == "DATA":
            if self.mail_from is None:
                return "503 5.5.1 Error: need RCPT command\r\n", False
            if not self.rcpts:
                return "554 5.5.1 Error: no valid recipients\r\n", False
            for address in self.rcpts:
                left = self.state.drops.get(address, 0)
                if left > 0:
                    self.state.drops[address] = left - 1
                    append_line(self.state.sessions_log, f"dropped after 354 for {address}")
                    return "354 End data with <CR><LF>.<CR><LF>\r\n", True
            self.in_data = True
            self.data_lines = []
            return "354 End data with <CR><LF>.<CR><LF>\r\n", False
        if verb == "RSET":
            self.reset()
            return "250 2.0.0 Ok\r\n", False
        if verb == "NOOP":
            return "250 2.0.0 Ok\r\n", False
        if verb == "QUIT":
            return "221 2.0.0 Bye\r\n", True
        return "502 5.5.2 Error: command not recognized\r\n", False

    def deliver(self):
        st = self.state
        st.counter += 1
        base = os.path.join(st.args.dump, f"{st.counter:06d}")
        write_atomically(base + ".eml", b"".join(l + b"\r\n" for l in self.data_lines))
        params = "MAIL " + self.mail_args + "\n" + "".join("RCPT " + a + "\n" for a in self.rcpt_args)
        write_atomically(base + ".params", params.encode())
        meta = {"mail_from": self.mail_from, "rcpt_tos": self.rcpts}
        write_atomically(base + ".json", json.dumps(meta, ensure_ascii=False).encode())
        self.reset()
        return f"250 2.0.0 Ok: queued as {st.counter}\r\n"


async def serve(args):
    loop = asyncio.get_running_loop()
    os.makedirs(args.dump, exist_ok=True)
    state = State(args)
    server = await loop.create_server(lambda: Session(state), host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        write_atomically(args.ready_file, f"{port}\n".encode())
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dump", required=True, metavar="DIR")
    p.add_argument("--ready-file", metavar="PATH")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--refuse", action="append", default=[], metavar="ADDRESS=REPLY")
    p.add_argument("--drop-after-354", action="append", default=[], metavar="ADDRESS:N")
    args = p.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
