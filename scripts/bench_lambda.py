"""Cold starts of the Lambda functions against a mock Lambda Runtime API (stdlib only).

  bench_lambda.py NAME BOOTSTRAP EVENT RUNS

Starts BOOTSTRAP RUNS times, each a fresh process, as Lambda does for a cold start: with
AWS_LAMBDA_RUNTIME_API pointing at a local mock of the Runtime API (the rest of the
environment is passed through). For each start it measures

  init   process start -> its first GET /runtime/invocation/next (what Lambda reports as
         Init Duration),
  first  that GET -> the POST of the first invocation's response (EVENT, a JSON file),
  peak   the process's peak resident memory (VmHWM) once it answered,

then stops the process. Prints the median and the slowest of each, and the answer's
status (an HTTP function's statusCode, or "ok").
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Mock:
    def __init__(self, event):
        self.event = event
        self.asked = None
        self.answered = None
        self.answer = None
        self.error = None
        self.served = False
        self.done = threading.Event()


def handler_for(mock):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"{}", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404)
            if mock.served:
                # The next invocation never comes: the process is stopped meanwhile.
                mock.done.wait(60)
                return self.reply(410)
            mock.asked = time.monotonic()
            mock.served = True
            deadline = int(time.time() * 1000) + 30_000
            self.reply(200, mock.event, [
                ("Lambda-Runtime-Aws-Request-Id", "bench-request-1"),
                ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                ("Lambda-Runtime-Invoked-Function-Arn",
                 "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
            ])

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/response"):
                mock.answered = time.monotonic()
                mock.answer = body
            else:
                mock.error = body.decode(errors="replace")
            self.reply(202)
            mock.done.set()

    return Handler


def status_of(answer):
    try:
        value = json.loads(answer)
    except ValueError:
        return "ok"
    if isinstance(value, dict) and "statusCode" in value:
        return str(value["statusCode"])
    return "ok"


def peak_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(name, bootstrap, event_file, runs):
    runs = int(runs)
    event = open(event_file, "rb").read()
    inits, firsts, peaks, statuses = [], [], [], set()
    for _ in range(runs):
        # A mock of its own for every start: a request still in flight from the stopped
        # process of the last start cannot pass for this one's.
        mock = Mock(event)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(mock))
        server.daemon_threads = True
        # A stopped process resets its pending request for the next invocation: not news.
        server.handle_error = lambda request, address: None
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
                   AWS_LAMBDA_FUNCTION_NAME=f"hotlead-{name}", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_LAMBDA_LOG_STREAM_NAME="bench",
                   AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/hotlead-{name}")
        started = time.monotonic()
        process = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        mock.done.wait(60)
        peak = peak_kib(process.pid)
        process.kill()
        _, stderr = process.communicate()
        mock.done.set()
        server.shutdown()
        server.server_close()
        if mock.error is not None or mock.answered is None:
            print(f"LAMBDA-INIT {name}: no answer: {mock.error or ''} {stderr.decode(errors='replace')[-400:]}")
            return
        inits.append(mock.asked - started)
        firsts.append(mock.answered - mock.asked)
        peaks.append(peak)
        statuses.add(status_of(mock.answer))

    def ms(values):
        return f"{statistics.median(values) * 1000:6.1f} ms (slowest {max(values) * 1000:6.1f})"

    print(f"LAMBDA-INIT {name:12} init {ms(inits)}, first answer {ms(firsts)}, "
          f"peak memory {statistics.median(peaks) / 1024:5.1f} MiB; {runs} starts, answered {'/'.join(sorted(statuses))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
