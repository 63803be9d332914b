"""``streamrecon keys generate DIR``: CURVE key pairs for an authenticated, encrypted mesh stream
(publisher ``--curve-keys DIR``; subscribers ``--curve-keys DIR``; layout in ``docs/protocol.md``)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("keys", help="make CURVE keys to authenticate subscribers", description=__doc__)
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = sub.add_parser("generate", help="write a server and a client key pair into DIR",
                       description="Write server.key(_secret), client.key(_secret) and authorized_clients/client.key.")
    g.add_argument("dir", help="key folder (created)")
    g.add_argument("--force", action="store_true", help="replace existing keys")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..transport.curve import generate
    from ..errors import UserInputError

    if getattr(args, "keys_command", None) != "generate":
        raise UserInputError("keys: expected 'streamrecon keys generate DIR'")
    paths = generate(args.dir, force=args.force)
    print(f"publisher: --curve-keys {args.dir} (uses {paths['server_secret']} and {args.dir}/authorized_clients/)\n"
          f"subscriber: --curve-keys {args.dir} (uses {paths['client_secret']} and {paths['server']}); "
          f"on another machine copy only those two files", file=sys.stderr)
    return 0
