"""Set up and read back objects on the tests' S3 server with boto3 (an
independent S3 client: the tests check sceneql's reads and writes with it).

  s3.py ENDPOINT mkbucket BUCKET
  s3.py ENDPOINT upload BUCKET PREFIX DIR      (every file under DIR)
  s3.py ENDPOINT upload-public BUCKET PREFIX DIR   (the same, readable anonymously)
  s3.py ENDPOINT download BUCKET KEY FILE
  s3.py ENDPOINT list BUCKET PREFIX            (one key per line)
  s3.py ENDPOINT put BUCKET KEY FILE
  s3.py ENDPOINT delete BUCKET KEY
"""
import os
import sys

import boto3


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def main():
    endpoint, command, *args = sys.argv[1:]
    s3 = client(endpoint)
    if command == "mkbucket":
        s3.create_bucket(Bucket=args[0])
    elif command in ("upload", "upload-public"):
        bucket, prefix, root = args
        extra = {"ACL": "public-read"} if command == "upload-public" else None
        for folder, _, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                key = prefix.rstrip("/") + "/" + os.path.relpath(path, root)
                s3.upload_file(path, bucket, key, ExtraArgs=extra)
    elif command == "download":
        bucket, key, path = args
        s3.download_file(bucket, key, path)
    elif command == "put":
        bucket, key, path = args
        s3.upload_file(path, bucket, key)
    elif command == "delete":
        bucket, key = args
        s3.delete_object(Bucket=bucket, Key=key)
    elif command == "list":
        bucket, prefix = args
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", []):
                print(o["Key"])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
