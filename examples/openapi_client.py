#!/usr/bin/env python3
"""A client written from the OpenAPI document alone: it reads GET /v1/openapi.json, finds the
operations by their operationId, and creates a token request and polls it to the end.

    python3 examples/openapi_client.py http://127.0.0.1:7777 [client_name] [hostname]

It prints one JSON line per poll and, at the end, the request's final status answer; it exits
0 when the request was approved. Standard library only.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def operations(document):
    """Each operation by its operationId: (method, path template)."""
    found = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = (method.upper(), path)
    return found


def main():
    base = sys.argv[1].rstrip("/")
    client_name = sys.argv[2] if len(sys.argv) > 2 else "openapi-example"
    hostname = sys.argv[3] if len(sys.argv) > 3 else "example-host"
    _, document = call("GET", f"{base}/v1/openapi.json")
    ops = operations(document)

    method, path = ops["createTokenRequest"]
    status, created = call(method, base + path, {"client_name": client_name, "hostname": hostname})
    if status != 201:
        print(json.dumps(created), file=sys.stderr)
        return 1
    # The status operation's `wait` parameter, as the document describes it.
    method, path = ops["getTokenRequestStatus"]
    parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
    wait = min(5, parameters["wait"]["schema"].get("maximum", 0))
    url = base + path.replace("{id}", created["request_id"]) + f"?wait={wait}"
    while True:
        status, answer = call(method, url, token=created["poll_token"])
        if status == 429:
            time.sleep(1)
            continue
        print(json.dumps({"status": answer.get("status"), "error": answer.get("error")}))
        if status != 200 or answer["status"] not in ("pending", "in_progress"):
            break
    print(json.dumps(answer))
    return 0 if answer.get("status") == "approved" else 1


if __name__ == "__main__":
    sys.exit(main())
