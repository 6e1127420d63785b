"""What a login costs: the argon2id hash alone, and a whole TCP login on a real server.

    python -m benchmarks.logins [--rounds 20]

Prints the median and the 95th percentile of: hashing a password, verifying it,
and, against a chat started in this process on port 0, the time from connecting
to the welcome for an unregistered nick and for a registered one (nick, then
``Password for NICK:``, then the password). The difference between the last two
is what the password costs a user.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from tests.support.chat import start_chat
from tests.support.clients import TcpClient
from webchat.accounts.passwords import Passwords

PASSWORD = "correct-horse-battery"


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<32} median {statistics.median(samples):7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    passwords = Passwords()
    stored = passwords.hash(PASSWORD)
    print(f"argon2id parameters: {stored.split('$')[3]}")
    show("hash", timed(lambda: passwords.hash(PASSWORD), rounds))
    show("verify", timed(lambda: passwords.verify(stored, PASSWORD), rounds))

    chat, stop = start_chat(rate_per_second=0, login_failures=0)
    try:
        owner = chat.tcp("owner")
        owner.line(f"/register {PASSWORD}")
        owner.expect("registered")
        owner.line("/quit")
        owner.read_until_closed()
        counter = iter(range(10**6))

        def plain() -> None:
            client = chat.tcp(f"guest{next(counter)}")
            client.close()

        def registered() -> None:
            client = TcpClient(chat.tcp_port)
            client.read_exact(b"Enter your nickname: ")
            client.line("owner")
            client.read_exact(b"Password for owner: ")
            client.line(PASSWORD)
            client.expect("Welcome")
            client.line("/quit")
            client.read_until_closed()

        show("TCP login, unregistered nick", timed(plain, rounds))
        show("TCP login, registered nick", timed(registered, rounds))
    finally:
        stop()


if __name__ == "__main__":
    main()
