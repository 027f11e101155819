#!/usr/bin/env python3
"""A test HTTP server for cairn's integration tests.

Serves DIR on 127.0.0.1 on a free port and prints the port on stdout, then one line per
request to LOG (if given). --delay makes every request sleep first (a slow server, to kill a
pull half-way); --junk answers every request with the same garbage bytes (a remote that is
not an OSTree repository).

usage: server.py DIR [--delay SECONDS] [--junk] [--log FILE]
"""
import argparse
import functools
import http.server
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--junk", action="store_true")
    p.add_argument("--log")
    a = p.parse_args()
    log = open(a.log, "a", buffering=1) if a.log else None

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if log:
                log.write(self.path + "\n")
            if a.delay:
                time.sleep(a.delay)
            if a.junk:
                body = b"<html>this is not an ostree repository</html>\x00\xff" * 7
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    handler = functools.partial(Handler, directory=a.dir)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
