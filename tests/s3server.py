"""An S3-compatible server for tests: moto's server mode, in a thread of the test process, listening on
127.0.0.1 only, with dummy credentials; the results code reaches it through pyarrow's S3FileSystem."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pyarrow.fs as pafs

#: What the test process, the drivers it starts and their Ray workers need to reach the server: dummy
#: credentials (so that no credential provider looks further, such as the EC2 metadata address), and
#: no proxy between them and 127.0.0.1.
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


@dataclass(frozen=True)
class S3Server:
    """A running server and its one bucket."""

    host: str
    port: int
    bucket: str

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``, the form of ``AWS_ENDPOINT_URL``."""
        return f"http://{self.host}:{self.port}"

    def uri(self, path: str) -> str:
        """``s3://BUCKET/PATH`` with the endpoint in its query, as a user gives ``--out``."""
        return f"s3://{self.bucket}/{path}?endpoint_override={self.host}:{self.port}&scheme=http"

    @property
    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=ENV["AWS_ACCESS_KEY_ID"], secret_key=ENV["AWS_SECRET_ACCESS_KEY"],
                                 endpoint_override=f"{self.host}:{self.port}", scheme="http")

    def files(self, path: str) -> list[str]:
        """Every object under ``BUCKET/PATH`` (recursive), as paths relative to it."""
        base = f"{self.bucket}/{path.strip('/')}"
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=True))
        return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


@contextmanager
def s3_server(bucket: str = "collapse") -> Iterator[S3Server]:
    """Start the server on a free port of 127.0.0.1 with an empty ``bucket``; stop it on exit."""
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")  # one log line per request otherwise
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        running = S3Server(host, port, bucket)
        pafs.S3FileSystem(access_key=ENV["AWS_ACCESS_KEY_ID"], secret_key=ENV["AWS_SECRET_ACCESS_KEY"],
                          endpoint_override=f"{host}:{port}", scheme="http",
                          allow_bucket_creation=True).create_dir(bucket)
        yield running
    finally:
        server.stop()
        werkzeug.setLevel(level)
