#!/usr/bin/env python3
"""Prints N distinct TCP ports free on 127.0.0.1 now, all below the kernel's
ephemeral range: a port picked inside it can be taken by another process's
outgoing connection before a node binds it (a 5,000-validator middleware run
lost a node to "Address already in use" that way).

usage: free-ports.py N"""
import random
import socket
import sys

low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports, tried = [], set()
while len(ports) < int(sys.argv[1]):
    p = random.randrange(10000, low)
    if p in tried:
        continue
    tried.add(p)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))
