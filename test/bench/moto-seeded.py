# moto_server with a bucket seeded in-process before it serves: the retention benchmark needs
# 200,000+ objects, which moto accepts over HTTP at only 60-90 PUT/s. Usage:
#   python moto-seeded.py SEED_FILE BUCKET -H 127.0.0.1 -p PORT
# SEED_FILE holds one "key<TAB>body" per line. Run with the Python that runs moto_server.
import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import main

seed_file, bucket, *server_args = sys.argv[1:]
backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
backend.create_bucket(bucket, "us-east-1")
count = 0
with open(seed_file, encoding="utf-8") as f:
    for line in f:
        key, _, body = line.rstrip("\n").partition("\t")
        backend.put_object(bucket, key, body.encode().replace(b"\\n", b"\n"), disable_notification=True)
        count += 1
print(f"seeded {count} objects into {bucket}", file=sys.stderr, flush=True)
main(server_args)
