#!/usr/bin/env python3
"""Checks launchpad deposit-data files independently of dvnode: the SSZ roots
are computed here from the consensus specs' definitions (DepositMessage,
DepositData, ForkData, SigningData) and each signature is verified with
py_ecc's BLS (the Ethereum proof-of-possession ciphersuite) under the deposit
domain of the file's fork version and a zero genesis validators root.

usage: verify-deposit-data.py [--fork-version HEX] FILE...
Prints one line per deposit and exits non-zero if any check fails."""

import hashlib
import json
import sys

from py_ecc.bls import G2ProofOfPossession as bls

DOMAIN_DEPOSIT = bytes.fromhex("03000000")
ZERO = bytes(32)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def merkleize(chunks):
    """Root of 32-byte chunks, padded with zero chunks to a power of two."""
    size = 1
    while size < len(chunks):
        size *= 2
    layer = list(chunks) + [ZERO] * (size - len(chunks))
    while len(layer) > 1:
        layer = [sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def bytes_root(value: bytes) -> bytes:
    """hash_tree_root of a fixed-size byte vector."""
    padded = value + bytes((-len(value)) % 32)
    return merkleize([padded[i:i + 32] for i in range(0, len(padded), 32)])


def uint64_root(value: int) -> bytes:
    return value.to_bytes(8, "little") + bytes(24)


def deposit_message_root(pubkey, credentials, amount):
    return merkleize([bytes_root(pubkey), credentials, uint64_root(amount)])


def deposit_data_root(pubkey, credentials, amount, signature):
    return merkleize([bytes_root(pubkey), credentials, uint64_root(amount), bytes_root(signature)])


def deposit_domain(fork_version: bytes) -> bytes:
    fork_data_root = merkleize([bytes_root(fork_version), ZERO])
    return DOMAIN_DEPOSIT + fork_data_root[:28]


def check(entry, expected_fork):
    pubkey = bytes.fromhex(entry["pubkey"])
    credentials = bytes.fromhex(entry["withdrawal_credentials"])
    amount = int(entry["amount"])
    signature = bytes.fromhex(entry["signature"])
    fork = bytes.fromhex(entry["fork_version"])
    problems = []
    if expected_fork is not None and fork != expected_fork:
        problems.append(f"fork_version {fork.hex()} is not {expected_fork.hex()}")
    message_root = deposit_message_root(pubkey, credentials, amount)
    if message_root.hex() != entry["deposit_message_root"]:
        problems.append("deposit_message_root does not match")
    if deposit_data_root(pubkey, credentials, amount, signature).hex() != entry["deposit_data_root"]:
        problems.append("deposit_data_root does not match")
    signing_root = merkleize([message_root, deposit_domain(fork)])
    if not bls.Verify(pubkey, signing_root, signature):
        problems.append("the signature does not verify under the deposit domain")
    return problems


def main(argv):
    expected_fork = None
    if len(argv) > 1 and argv[0] == "--fork-version":
        expected_fork = bytes.fromhex(argv[1].removeprefix("0x"))
        argv = argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    checked = 0
    for path in argv:
        with open(path) as f:
            entries = json.load(f)
        for i, entry in enumerate(entries):
            problems = check(entry, expected_fork)
            checked += 1
            if problems:
                failed += 1
                print(f"FAIL {path} deposit {i} ({entry['pubkey'][:16]}...): {'; '.join(problems)}")
            else:
                print(f"ok   {path} deposit {i} ({entry['pubkey'][:16]}...) amount {entry['amount']}")
    print(f"checked={checked} failed={failed}")
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
