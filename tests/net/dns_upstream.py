"""A stand-in for the outside world's DNS, run inside the test's network namespace:
``up.example`` is 10.9.9.9, every other name NXDOMAIN. Usage: dns_upstream.py ADDRESS"""

from __future__ import annotations

import socket
import sys

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


def main(address: str) -> None:
    """Answer queries on ADDRESS:53 (UDP) until killed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        request = DNSRecord.parse(data)
        reply = request.reply()
        if str(request.q.qname).lower() == "up.example." and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("10.9.9.9"), ttl=60))
        elif str(request.q.qname).lower() != "up.example.":
            reply.header.rcode = RCODE.NXDOMAIN
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main(sys.argv[1])
