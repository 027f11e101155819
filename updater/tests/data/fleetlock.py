#!/usr/bin/env python3
"""A FleetLock server stand-in for cairn's integration tests (the protocol Zincati speaks).

One semaphore per group with SLOTS slots (default 1). `POST /v1/pre-reboot` takes a slot for
the node (200; again 200 if it holds one already), or answers 409 with
{"kind": "failed_lock", "value": …} when none is free. `POST /v1/steady-state` frees the node's
slot (200 whether it held one or not). Requests without `fleet-lock-protocol: true` or with a
bad body get 400. Prints the port on stdout; logs "OP ID GROUP STATUS" lines to LOG.

usage: fleetlock.py [--slots N] [--log FILE]
"""
import argparse
import http.server
import json
import sys
import threading


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--slots", type=int, default=1)
    p.add_argument("--log")
    a = p.parse_args()
    log = open(a.log, "a", buffering=1) if a.log else None
    holders = {}  # group -> set of ids
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            op = self.path.rstrip("/").rsplit("/", 1)[-1]
            if self.headers.get("fleet-lock-protocol") != "true":
                return self.answer(400, {"kind": "missing_header", "value": "fleet-lock-protocol"})
            try:
                params = json.loads(raw)["client_params"]
                node, group = params["id"], params["group"]
            except (ValueError, KeyError, TypeError):
                return self.answer(400, {"kind": "bad_body", "value": raw.decode("utf-8", "replace")})
            with lock:
                held = holders.setdefault(group, set())
                if self.path.endswith("/v1/pre-reboot"):
                    if node in held or len(held) < a.slots:
                        held.add(node)
                        status, body = 200, {}
                    else:
                        status, body = 409, {"kind": "failed_lock",
                                             "value": f"all {a.slots} slots held by {sorted(held)}"}
                elif self.path.endswith("/v1/steady-state"):
                    held.discard(node)
                    status, body = 200, {}
                else:
                    status, body = 404, {"kind": "not_found", "value": self.path}
                if log:
                    log.write(f"{op} {node} {group} {status}\n")
            self.answer(status, body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
