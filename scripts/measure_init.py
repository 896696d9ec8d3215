"""Init time of the function: process start to its first poll of the Lambda Runtime API.

A minimal Runtime API stub on loopback answers nothing; the time from spawning the binary to the
first `GET /2018-06-01/runtime/invocation/next` is the init time (configuration, the built-in
document check, aws-config's environment credentials and region, the SDK client, the runtime).
Usage: measure_init.py BINARY [RUNS]   (e.g. target/release/iot-audit-remediator 20)
"""
import os
import socket
import statistics
import subprocess
import sys
import time


def once(binary):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.getsockname()[1]}",
               AWS_LAMBDA_FUNCTION_NAME="iot-audit-remediator", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_LAMBDA_LOG_FORMAT="JSON")
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = server.accept()
        request = conn.recv(4096).decode(errors="replace")
        elapsed = time.perf_counter() - start
        assert "/runtime/invocation/next" in request, request
        conn.close()
        return elapsed
    finally:
        proc.kill()
        proc.wait()
        server.close()


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    times = sorted(once(binary) for _ in range(runs))
    print(f"init (process start to first poll), {runs} runs: median {statistics.median(times) * 1000:.1f} ms, "
          f"min {times[0] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
