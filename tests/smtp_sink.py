"""A real SMTP server for the tests: aiosmtpd writing every message into a Maildir.

Usage: smtp_sink.py --port PORT --maildir DIR
Prints "ready <port>" once it accepts connections; runs until killed.
"""
import argparse
import signal
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    args = ap.parse_args()
    controller = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=args.port)
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
