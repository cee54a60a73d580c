#!/usr/bin/env python3
"""Test SMTP server for rundbrev's integration tests, built on aiosmtpd.

Every message accepted is saved in --dump DIR as <n>.eml, holding exactly the
DATA bytes the client sent (after dot-unstuffing, CRLF line ends, no header
added), and <n>.json, holding the envelope ({"mail_from": ..., "rcpt_tos":
[...]}), and <n>.params, holding the MAIL FROM and RCPT TO arguments as
the client wrote them (one "MAIL <args>" line, then one "RCPT <args>" line
per accepted recipient). The .json file is written last, so its presence
marks a complete message; all are in place before the client sees "250".
With --dsn the server lists DSN (RFC 3461) in its EHLO reply and accepts
the RET, ENVID, NOTIFY and ORCPT parameters; without it, like aiosmtpd
itself, it refuses them with 555. TLS is off,
STARTTLS or implicit (--tls-mode); with --auth-user/--auth-password, AUTH
PLAIN or LOGIN must succeed before MAIL. The password is compared as UTF-8
text and never logged. With --port 0 the OS picks the port; --ready-file
receives the bound port once the server listens. SIGTERM or SIGINT stops it
with exit status 0.
"""

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import signal
import ssl
import sys

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:  # pragma: no cover - the Rust harness turns this into a hint
    sys.stderr.write("smtpd.py: cannot import aiosmtpd: run `pip install aiosmtpd`\n")
    sys.exit(3)

log = logging.getLogger("smtpd")


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


DSN_PARAMETERS = ("RET", "ENVID", "NOTIFY", "ORCPT")


def without_keyword(arg):
    """"FROM:<a@b> RET=HDRS" -> "<a@b> RET=HDRS"."""
    return re.sub(r"^(FROM|TO):\s*", "", arg or "", flags=re.IGNORECASE)


class RecordingSMTP(SMTP):
    """Keeps the MAIL and RCPT arguments as sent; with offer_dsn, takes DSN's parameters."""

    def __init__(self, handler, *, offer_dsn=False, **kwargs):
        super().__init__(handler, **kwargs)
        self.offer_dsn = offer_dsn

    def _getparams(self, params):
        result = super()._getparams(params)
        if result is not None and self.offer_dsn:
            for name in DSN_PARAMETERS:
                result.pop(name, None)
        return result

    async def smtp_MAIL(self, arg):
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from:
            if not getattr(self.envelope, "raw_args", None):
                self.envelope.raw_args = ["MAIL " + without_keyword(arg)]

    async def smtp_RCPT(self, arg):
        before = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        await super().smtp_RCPT(arg)
        if self.envelope is not None and len(self.envelope.rcpt_tos) > before:
            self.envelope.raw_args.append("RCPT " + without_keyword(arg))


class DumpHandler:
    """Saves each message as <n>.eml plus its envelope as <n>.json and <n>.params."""

    def __init__(self, dump_dir, offer_dsn=False):
        self.dump_dir = dump_dir
        self.offer_dsn = offer_dsn
        existing = [f for f in os.listdir(dump_dir) if f.endswith(".json")]
        self.counter = len(existing)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer_dsn:
            responses.insert(len(responses) - 1, "250-DSN")  # before the last line, "250 HELP"
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.counter += 1
        base = os.path.join(self.dump_dir, f"{self.counter:06d}")
        # decode_data=False: original_content is the raw DATA payload as bytes.
        write_atomically(base + ".eml", envelope.original_content)
        params = "".join(line + "\n" for line in getattr(envelope, "raw_args", []))
        write_atomically(base + ".params", params.encode())
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        write_atomically(base + ".json", json.dumps(meta, ensure_ascii=False).encode())
        log.info("saved message %d from %s to %s", self.counter, envelope.mail_from,
                 envelope.rcpt_tos)
        return f"250 2.0.0 Ok: queued as {self.counter}"


class Authenticator:
    """Accepts exactly one user name and password, both compared as UTF-8 text."""

    def __init__(self, user, password):
        self.user = user
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            login = auth_data.login.decode("utf-8")
            password = auth_data.password.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("AUTH %s failed from %s: user name or password is not valid UTF-8",
                        mechanism, session.peer)
            return AuthResult(success=False, handled=False)
        if login == self.user and hmac.compare_digest(password.encode("utf-8"), self.password):
            log.info("AUTH %s succeeded for %r", mechanism, login)
            return AuthResult(success=True)
        why = "wrong password" if login == self.user else "unknown user"
        log.warning("AUTH %s failed from %s for user %r: %s", mechanism, session.peer, login, why)
        return AuthResult(success=False, handled=False)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0 lets the OS choose")
    p.add_argument("--dump", required=True, metavar="DIR")
    p.add_argument("--cert", metavar="FILE")
    p.add_argument("--key", metavar="FILE")
    p.add_argument("--tls-mode", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--ready-file", metavar="PATH")
    p.add_argument("--dsn", action="store_true", help="offer DSN (RFC 3461)")
    args = p.parse_args(argv)
    if args.tls_mode != "none" and not (args.cert and args.key):
        p.error("--tls-mode starttls/implicit needs --cert and --key")
    if args.require_starttls and args.tls_mode != "starttls":
        p.error("--require-starttls needs --tls-mode starttls")
    if (args.auth_user is None) != (args.auth_password is None):
        p.error("--auth-user and --auth-password go together")
    return args


async def serve(args):
    loop = asyncio.get_running_loop()
    os.makedirs(args.dump, exist_ok=True)
    handler = DumpHandler(args.dump, offer_dsn=args.dsn)

    tls = None
    if args.tls_mode != "none":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    smtp_kwargs = dict(
        decode_data=False,
        hostname="localhost",  # avoids socket.getfqdn(), which may wait on DNS
        loop=loop,
    )
    if args.tls_mode == "starttls":
        smtp_kwargs.update(tls_context=tls, require_starttls=args.require_starttls)
    if args.auth_user is not None:
        smtp_kwargs.update(
            authenticator=Authenticator(args.auth_user, args.auth_password),
            auth_required=True,
            # STARTTLS: AUTH only after STARTTLS. Implicit TLS: aiosmtpd does not see
            # that the socket is already TLS, so its own check must be off.
            auth_require_tls=args.tls_mode == "starttls",
        )

    server = await loop.create_server(
        lambda: RecordingSMTP(handler, offer_dsn=args.dsn, **smtp_kwargs),
        host=args.host,
        port=args.port,
        ssl=tls if args.tls_mode == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    log.info("listening on %s:%d (tls=%s, auth=%s)", args.host, port, args.tls_mode,
             args.auth_user is not None)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        write_atomically(args.ready_file, f"{port}\n".encode())
    await stop.wait()
    log.info("stopping")
    server.close()
    await server.wait_closed()


def main(argv=None):
    args = parse_args(argv)
    # INFO, not DEBUG: aiosmtpd's debug output would show AUTH LOGIN replies.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
