"""A loopback HTTP server whose URL prefix picks a misbehaviour: for testing downloads."""
from __future__ import annotations

import http.server
import socket
import threading
import time
from contextlib import contextmanager


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    stall_seconds = 5.0
    throttle_seconds = 0.05  # per chunk for /slow/
    drip_seconds = 0.05  # per byte for /drip/

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        body = self.files.get(name)
        raw = {  # answers that are not HTTP as a client expects
            "nothttp": b"SSH-2.0-OpenSSH_9.6\r\n",
            "manyheaders": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: x\r\n" % i for i in range(150)) + b"\r\n",
            "badlength": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhello",  # a superscript two
            "badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n",
        }
        if mode in raw:
            self.wfile.write(raw[mode])
            self.wfile.flush()
            return None
        if mode == "headdrip":  # the status line and headers one byte at a time, each within the socket timeout
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body or b"") + b"X-Pad: " + b"x" * 10_000
            try:
                for i in range(len(head)):
                    self.wfile.write(head[i:i + 1])
                    self.wfile.flush()
                    time.sleep(self.drip_seconds)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if mode == "m404" or body is None:
            return self.send_error(404)
        if mode == "m500":
            return self.send_error(500)
        if mode in ("loop", "tofile", "toftp"):
            self.send_response(302)
            target = {"loop": self.path, "tofile": "file:///etc/passwd", "toftp": "ftp://127.0.0.1/x"}[mode]
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if mode == "huge":  # announces far more than any MNIST file
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            return None
        if mode == "stall":
            time.sleep(self.stall_seconds)
        if mode == "badmd5":
            body = bytes(len(body))
        self.send_response(200)
        if mode != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "drip":  # one byte at a time, each well within the socket timeout
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(self.drip_seconds)
                return
            if mode == "nolength":  # an endless body, no length announced
                while True:
                    self.wfile.write(bytes(1 << 16))
            if mode == "cut":  # close half-way through, as a dropped connection does
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == "slow":
                for start in range(0, len(body), 4096):
                    self.wfile.write(body[start:start + 4096])
                    self.wfile.flush()
                    time.sleep(self.throttle_seconds)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def serve(files: dict):
    """Serve `files` (name -> bytes) on 127.0.0.1; yields the base URL 'http://127.0.0.1:PORT'."""
    handler = type("FilesHandler", (Handler,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """A loopback URL where nothing listens, so connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/none"
