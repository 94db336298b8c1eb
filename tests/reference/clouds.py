"""Set up objects on the tests' Azure Blob emulator (Azurite) with plain HTTP
requests (the standard library only: an independent client, the tests check
sceneql's reads with it).

  clouds.py az ENDPOINT mkcontainer CONTAINER
  clouds.py az ENDPOINT upload CONTAINER PREFIX DIR
  clouds.py az ENDPOINT list CONTAINER PREFIX

ENDPOINT: the Azure account's blob endpoint (http://127.0.0.1:P/devstoreaccount1: Azurite's
well-known account, signed with its well-known key).
"""
import base64
import email.utils
import hashlib
import hmac
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZ_VERSION = "2021-08-06"


def send(method, url, body=b"", headers=None):
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {url}: {e.code} {e.read()[:500]!r}")


def files(root, prefix):
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(folder, name)
            yield path, prefix.rstrip("/") + "/" + os.path.relpath(path, root)


def az_send(method, url, body=b"", headers=None):
    headers = dict(headers or {})
    headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
    headers["x-ms-version"] = AZ_VERSION
    u = urllib.parse.urlsplit(url)
    ms = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
    query = sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    length = str(len(body)) if body else ""
    get = lambda k: headers.get(k, "")  # noqa: E731
    to_sign = "\n".join(
        [
            method,
            get("Content-Encoding"),
            get("Content-Language"),
            length,
            get("Content-MD5"),
            get("Content-Type"),
            "",  # Date: x-ms-date is used
            get("If-Modified-Since"),
            get("If-Match"),
            get("If-None-Match"),
            get("If-Unmodified-Since"),
            get("Range"),
            *[f"{k}:{v}" for k, v in ms],
            f"/{AZ_ACCOUNT}{urllib.parse.unquote(u.path)}",
            *[f"{k.lower()}:{v}" for k, v in query],
        ]
    )
    mac = hmac.new(base64.b64decode(AZ_KEY), to_sign.encode(), hashlib.sha256)
    headers["Authorization"] = f"SharedKey {AZ_ACCOUNT}:{base64.b64encode(mac.digest()).decode()}"
    return send(method, url, body, headers)


def az(endpoint, command, args):
    api = endpoint.rstrip("/")
    if command == "mkcontainer":
        az_send("PUT", f"{api}/{args[0]}?restype=container")
    elif command == "upload":
        container, prefix, root = args
        for path, name in files(root, prefix):
            with open(path, "rb") as f:
                data = f.read()
            url = f"{api}/{container}/{urllib.parse.quote(name)}"
            az_send(
                "PUT",
                url,
                data,
                {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"},
            )
    elif command == "list":
        container, prefix = args
        marker = ""
        while True:
            q = {"restype": "container", "comp": "list", "prefix": prefix}
            if marker:
                q["marker"] = marker
            xml = az_send("GET", f"{api}/{container}?{urllib.parse.urlencode(q)}").decode()
            for name in re.findall(r"<Name>([^<]*)</Name>", xml):
                print(name)
            marker = (re.findall(r"<NextMarker>([^<]*)</NextMarker>", xml) or [""])[0]
            if not marker:
                break
    else:
        sys.exit(f"unknown command {command}")


def main():
    cloud, endpoint, command, *args = sys.argv[1:]
    {"az": az}[cloud](endpoint, command, args)


if __name__ == "__main__":
    main()
