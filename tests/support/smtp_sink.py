"""A real SMTP server for the tests (aiosmtpd): it accepts every mail and
writes each, parsed, as a JSON file into a directory. Usage:

    python smtp_sink.py PORT DIRECTORY [--stall] [--delay SECONDS]

With --stall it takes each mail's data and never answers (it writes an
empty `N.stalled` file instead), as a server that hangs mid-send. With
--delay it answers each mail's data that many seconds late, as a slow
server does. Prints "smtp listening on PORT" once it accepts connections; runs until
stdin closes or it is killed."""

import asyncio
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, stall, delay):
        self.directory = directory
        self.stall = stall
        self.delay = delay
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        if self.stall:
            open(os.path.join(self.directory, f"{self.count}.stalled"), "w").close()
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = lambda kind: (message.get_body((kind,)) or message).get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {key: str(value) for key, value in message.items()},
            "text": part("plain"),
            "html": part("html"),
        }
        path = os.path.join(self.directory, f"{time.time_ns()}-{self.count}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    options = sys.argv[3:]
    stall = "--stall" in options
    delay = float(options[options.index("--delay") + 1]) if "--delay" in options else 0.0
    controller = Controller(Sink(directory, stall, delay), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"smtp listening on {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
