"""The object store behind DataProxy: signed PUT/GET URLs served by a loopback HTTP server.

Mirrors what FlyteAdmin's DataProxy hands out (an S3 pre-signed URL): the URL is HMAC-signed over
method, object key, expiry and the Content-MD5 it was issued for; a PUT must carry that
Content-MD5 and a body that hashes to it (S3 answers BadDigest otherwise); an expired or tampered
URL is refused with 403. Objects land under <state_dir>/blobs/<bucket>/<key>.

The same server answers the test side's JSON queries: GET /_state, GET /_entity?kind=...&project=...,
POST /_wipe (forget every entity and object: a FlyteAdmin whose database and bucket were reset) and
POST /_latency {"ms": N} (the delay added to every gRPC call from now on).
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

BUCKET = "my-s3-bucket"


class BlobStore:
    def __init__(self, state_dir: str, store):
        self.root = os.path.join(state_dir, "blobs")
        self.store = store  # records uploads, answers /_state
        self.secret = secrets.token_bytes(32)
        self.port = None

    # --- objects -------------------------------------------------------------------------------
    def path(self, bucket: str, key: str) -> str:
        full = os.path.normpath(os.path.join(self.root, bucket, key))
        if not full.startswith(self.root + os.sep):
            raise ValueError(f"object key escapes the store: {key}")
        return full

    def head(self, native_url: str):
        """The stored object's hex md5 (its S3 ETag), or None."""
        bucket, key = split_native(native_url)
        p = self.path(bucket, key)
        if not os.path.isfile(p):
            return None
        with open(p, "rb") as f:
            return hashlib.md5(f.read()).hexdigest()

    # --- signing -------------------------------------------------------------------------------
    def _sign(self, method: str, bucket: str, key: str, expires: int, md5: str) -> str:
        msg = "\n".join([method, bucket, key, str(expires), md5]).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, method: str, native_url: str, expires_in: float, content_md5_b64: str = "") -> str:
        bucket, key = split_native(native_url)
        expires = int(time.time() + expires_in)
        sig = self._sign(method, bucket, key, expires, content_md5_b64)
        query = f"X-Expires={expires}&X-Signature={sig}"
        if content_md5_b64:
            query += "&X-Content-MD5=" + quote(content_md5_b64, safe="")
        return f"http://127.0.0.1:{self.port}/{bucket}/{quote(key)}?{query}"

    def check(self, method: str, bucket: str, key: str, query: dict):
        """None if the URL is valid for this request, else a reason."""
        try:
            expires = int(query["X-Expires"][0])
            sig = query["X-Signature"][0]
        except (KeyError, ValueError):
            return "missing signature"
        md5 = query.get("X-Content-MD5", [""])[0]
        if not hmac.compare_digest(sig, self._sign(method, bucket, key, expires, md5)):
            return "SignatureDoesNotMatch"
        if time.time() > expires:
            return "Request has expired"
        return None


def split_native(native_url: str):
    if not native_url.startswith("s3://"):
        raise ValueError(f"not an s3:// url: {native_url}")
    bucket, _, key = native_url[len("s3://"):].partition("/")
    return bucket, key


def make_handler(blobs: BlobStore):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet; errors still go to the server log
            pass

        def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj, code: int = 200):
            self._send(code, json.dumps(obj).encode(), "application/json")

        def _object(self):
            parts = urlsplit(self.path)
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            return bucket, key, parse_qs(parts.query)

        def do_PUT(self):
            bucket, key, query = self._object()
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            reason = blobs.check("PUT", bucket, key, query)
            if reason:
                return self._send(403, reason.encode())
            signed_md5 = query.get("X-Content-MD5", [""])[0]
            header_md5 = self.headers.get("Content-MD5", "")
            actual = base64.b64encode(hashlib.md5(body).digest()).decode()
            if signed_md5 and header_md5 != signed_md5:
                return self._send(403, b"SignatureDoesNotMatch: Content-MD5 differs from the signed one")
            if header_md5 and header_md5 != actual:
                return self._send(400, b"BadDigest: the Content-MD5 you specified did not match what we received")
            path = blobs.path(bucket, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".part"
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
            with blobs.store.lock:
                blobs.store.uploads.append({
                    "native_url": f"s3://{bucket}/{key}",
                    "size": len(body),
                    "md5": hashlib.md5(body).hexdigest(),
                    "path": path,
                })
            self.send_response(200)
            self.send_header("ETag", '"%s"' % hashlib.md5(body).hexdigest())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            if urlsplit(self.path).path == "/_wipe":
                blobs.store.wipe()
                return self._json({"wiped": True})
            if urlsplit(self.path).path == "/_latency":
                length = int(self.headers.get("Content-Length", "0"))
                blobs.store.latency_s = float(json.loads(self.rfile.read(length))["ms"]) / 1000.0
                return self._json({"latency_ms": blobs.store.latency_s * 1000.0})
            return self._send(404, b"not found")

        def do_GET(self):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/_state":
                return self._json(blobs.store.snapshot())
            if parts.path == "/_entity":
                args = {k: v[0] for k, v in query.items()}
                try:
                    found = blobs.store.entity_json(
                        args["kind"], args["project"], args["domain"], args["name"], args["version"])
                except KeyError as e:
                    return self._json({"error": f"missing {e}"}, 400)
                return self._json(found, 200 if found is not None else 404)
            bucket, key, query = self._object()
            reason = blobs.check("GET", bucket, key, query)
            if reason:
                return self._send(403, reason.encode())
            try:
                with open(blobs.path(bucket, key), "rb") as f:
                    data = f.read()
            except (OSError, ValueError):
                return self._send(404, b"NoSuchKey")
            self._send(200, data, "application/octet-stream")

    return Handler


def start_http(blobs: BlobStore, port: int = 0) -> ThreadingHTTPServer:
    """Serve on 127.0.0.1 only (port 0: a free one; blobs.port is set)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(blobs))
    httpd.daemon_threads = True
    blobs.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="flyteadmin-http",
                     daemon=True).start()
    return httpd
