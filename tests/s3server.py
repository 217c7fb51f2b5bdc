"""An S3-compatible server for tests: moto's server mode, in a thread of the test process, listening on
127.0.0.1 only. It checks every request's signature against the one access key it issues, so a process
that reaches it without that key (a Ray worker that did not inherit the driver's environment) is refused
rather than served anonymously."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow.fs as pafs

#: The environment every client needs besides the key: a region, no credential lookup beyond the
#: environment (the EC2 metadata address is off this machine), and no proxy before 127.0.0.1.
BASE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Server:
    """A running server, its one bucket, and the access key it accepts."""

    host: str
    port: int
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for a client: the key, and :data:`BASE_ENV`."""
        return {**BASE_ENV, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``, the form of ``AWS_ENDPOINT_URL``."""
        return f"http://{self.host}:{self.port}"

    def uri(self, path: str) -> str:
        """``s3://BUCKET/PATH`` with the endpoint in its query, as a user gives ``--out``."""
        return f"s3://{self.bucket}/{path}?endpoint_override={self.host}:{self.port}&scheme=http"

    @property
    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint_override=f"{self.host}:{self.port}",
            scheme="http",
        )

    def files(self, path: str) -> list[str]:
        """Every object under ``BUCKET/PATH`` (recursive), as paths relative to it."""
        base = f"{self.bucket}/{path.strip('/')}".rstrip("/")
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=True))
        return sorted(i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File)


@contextmanager
def s3_server(bucket: str = "collapse") -> Iterator[S3Server]:
    """Start the server on a free port of 127.0.0.1 with an empty ``bucket`` and one access key allowed
    every S3 action; from then on it refuses unsigned or wrongly signed requests. Stopped on exit."""
    import boto3
    from moto import settings
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")  # one log line per request otherwise
    level, no_auth = werkzeug.level, settings.INITIAL_NO_AUTH_ACTION_COUNT
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # The set-up requests go before authentication is on, so any key signs them.
        setup = dict(
            endpoint_url=f"http://{host}:{port}",
            region_name=BASE_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="sweep")
        iam.put_user_policy(UserName="sweep", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        key = iam.create_access_key(UserName="sweep")["AccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # moto's switch: authenticate every request from now on
        yield S3Server(host, port, bucket, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = no_auth
        werkzeug.setLevel(level)
