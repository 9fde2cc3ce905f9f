"""A real SMTP server for the tests: aiosmtpd writing every message into a Maildir.

Usage: smtp_sink.py --port PORT --maildir DIR [options]
  --fail-first N --fail-code C   answer the first N DATA commands with code C (e.g. 451, 554)
  --reject-rcpt TEXT             answer RCPT with 550 for recipients containing TEXT
  --cert PEM --key PEM           TLS certificate and key
  --starttls                     offer and require STARTTLS (needs --cert/--key)
  --implicit-tls                 TLS from the first byte (SMTPS; needs --cert/--key)
  --auth USER:PASS               require AUTH PLAIN/LOGIN with these credentials
  --no-plain                     offer AUTH LOGIN only
Prints "ready <port>" once it accepts connections; runs until killed.
"""
import argparse
import logging
import os
import signal
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink(Mailbox):
    def __init__(self, path, fail_first, fail_code, reject):
        super().__init__(path)
        self.fail_left = fail_first
        self.fail_code = fail_code
        self.reject = reject

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return f"{self.fail_code} try again later" if self.fail_code < 500 else f"{self.fail_code} rejected"
        return await super().handle_DATA(server, session, envelope)


class Auth:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == self.user and auth_data.password == self.password
        return AuthResult(success=ok, handled=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--fail-code", type=int, default=451)
    ap.add_argument("--reject-rcpt", default="")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--no-plain", action="store_true")
    args = ap.parse_args()
    if os.environ.get("SMTP_SINK_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)

    kwargs = {}
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    if args.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.implicit_tls:
        kwargs.update(ssl_context=ctx)
    if args.auth:
        user, password = args.auth.split(":", 1)
        kwargs.update(authenticator=Auth(user, password), auth_required=True,
                      auth_require_tls=bool(args.starttls or args.implicit_tls))
        if args.no_plain:
            kwargs.update(auth_exclude_mechanism=["PLAIN"])
    handler = Sink(args.maildir, args.fail_first, args.fail_code, args.reject_rcpt)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, **kwargs)
    if args.implicit_tls:
        # The readiness probe of the controller speaks plain SMTP; start without it.
        controller.ready_timeout = 5
    controller.start()
    print(f"ready {args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
