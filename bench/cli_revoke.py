#!/usr/bin/env python3
"""How long a running `latchkey serve` keeps accepting a key after
`latchkey keys revoke` (another process) has exited.

Starts a server on a throwaway data directory (SQLite) on 127.0.0.1:18555,
then N times: creates a key, waits until the server accepts it, revokes it
with the CLI and polls GET /api/v1/me every 5 ms until the server refuses it.
Prints min, median and max in milliseconds.

    python3 bench/cli_revoke.py [N]      # BIN=path/to/latchkey (default target/release/latchkey)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("BIN", "target/release/latchkey")
PORT = 18555


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    data = tempfile.mkdtemp(prefix="latchkey-revoke-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    env["LATCHKEY_LOG"] = "warn"
    server = subprocess.Popen(
        [BIN, "--data-dir", data, "serve", "--listen", f"127.0.0.1:{PORT}",
         "--default-rate-limit", "10000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(*args):
        return subprocess.run([BIN, "--data-dir", data, *args], env=env,
                              capture_output=True, text=True, check=True).stdout

    def status(key):
        req = urllib.request.Request(f"http://127.0.0.1:{PORT}/api/v1/me",
                                     headers={"Authorization": f"Bearer {key}"})
        try:
            return urllib.request.urlopen(req).status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    try:
        shop = json.loads(cli("shop", "create", "--name", "Measure",
                              "--owner-email", "measure@example.com", "--json"))["shop_id"]
        while status("lk_live_x") == 0:
            time.sleep(0.05)
        took = []
        for _ in range(n):
            key = json.loads(cli("keys", "create", "--shop", shop, "--template",
                                 "read-only", "--json"))["key"]
            while status(key["secret"]) != 200:
                time.sleep(0.01)
            cli("keys", "revoke", key["id"])
            start = time.monotonic()
            while status(key["secret"]) == 200:
                time.sleep(0.005)
            took.append((time.monotonic() - start) * 1000)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)
    took.sort()
    print(f"{n} CLI revokes: refused after min {took[0]:.0f} ms, "
          f"median {took[len(took) // 2]:.0f} ms, max {took[-1]:.0f} ms")


if __name__ == "__main__":
    main()
