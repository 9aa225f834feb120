"""Helpers of scripts/bench-ingest (stdlib only).

  dirty DB OUT STOP     sample the count of marked-but-unscored leads every 50 ms from the
                        SQLite file (read-only) into OUT until the file STOP exists
  summary OUT END       the largest count sampled and, after the load ended at END (unix
                        seconds), how long until the count was zero
  alerts URL KEY OUTBOX N [--tag T]
                        N form submissions that each make a lead hot; prints the p50 and
                        p99 of submission -> alert line in the outbox file
  alerts URL KEY sqs:QUEUE_URL N [--tag T]
                        the same, the alert being a message on that SQS queue (subscribed
                        to the alerts topic with raw delivery; needs boto3, the AWS
                        endpoint and credentials in the environment)
  subscribe TOPIC_ARN   a new SQS queue subscribed to the topic (raw delivery); its URL
  pace URL KEY RATE USERS STOP
                        page calls at RATE a second (one of USERS users each) until the
                        file STOP exists; then prints the calls made, failed and the rate
"""

import json
import os
import sqlite3
import sys
import time
import urllib.request
import base64

DIRTY = "SELECT count(*) FROM marks m JOIN leads l ON l.id = m.lead_id WHERE l.merged_into IS NULL"


def dirty(db, out, stop):
    con = None
    with open(out, "w") as f:
        while not os.path.exists(stop):
            try:
                if con is None:
                    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                n = con.execute(DIRTY).fetchone()[0]
                f.write(f"{time.time():.3f} {n}\n")
            except sqlite3.Error as e:
                f.write(f"{time.time():.3f} error {e}\n")
            f.flush()
            time.sleep(0.05)


def summary(out, end):
    end = float(end)
    rows = []
    for line in open(out):
        t, n = line.split()[:2]
        if n.isdigit():
            rows.append((float(t), int(n)))
    during = [n for t, n in rows if t <= end]
    peak = max(during, default=0)
    drained = next((t - end for t, n in rows if t >= end and n == 0), None)
    drained = "never (while sampled)" if drained is None else f"{max(drained, 0):.2f} s"
    print(f"dirty leads during the load: max {peak} ({len(during)} samples); zero {drained} after the load")


def post(url, body, key=None):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if key:
        token = base64.b64encode(f"{key}:".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def outbox_reader(outbox, seen):
    """Reads new whole lines of the outbox file into `seen` (lead id -> first seen)."""
    offset = 0

    def read():
        nonlocal offset
        if not os.path.exists(outbox):
            return
        with open(outbox, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        # Only whole lines.
        end = chunk.rfind(b"\n") + 1
        offset += end
        now = time.monotonic()
        for line in chunk[:end].splitlines():
            try:
                alert = json.loads(line)
            except ValueError:
                continue
            seen.setdefault(alert.get("lead_id"), now)

    return read


def sqs_reader(queue_url, seen):
    """Receives (and deletes) the queue's messages into `seen`."""
    import boto3

    sqs = boto3.client("sqs")

    def read():
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return
            now = time.monotonic()
            for message in batch:
                try:
                    seen.setdefault(json.loads(message["Body"]).get("lead_id"), now)
                except ValueError:
                    pass
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return read


def subscribe(topic_arn):
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"bench-alerts-{int(time.time() * 1000)}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                                  Attributes={"RawMessageDelivery": "true"})
    print(url)


def pace(url, key, rate, users, stop):
    import random
    import threading

    rate, users = float(rate), int(users)
    made, failed = [0], [0]
    lock = threading.Lock()
    begun = time.monotonic()
    run = int(time.time())

    def worker(w, workers):
        rng = random.Random(w)
        i = 0
        while not os.path.exists(stop):
            # Call i of this worker is due at begun + (i * workers + w) / rate.
            due = begun + (i * workers + w) / rate
            time.sleep(max(0.0, due - time.monotonic()))
            u = rng.randrange(users)
            body = {"type": "page", "messageId": f"pace-{run}-{w}-{i}", "userId": f"user-{u}",
                    "anonymousId": f"anon-{u}", "name": "Pricing",
                    "context": {"page": {"path": "/pricing"}}}
            try:
                post(f"{url}/v1/page", body, key)
                ok = True
            except Exception:
                ok = False
            with lock:
                made[0] += 1
                failed[0] += not ok
            i += 1

    workers = 8
    threads = [threading.Thread(target=worker, args=(w, workers)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - begun
    print(f"{made[0]} page calls in {took:.1f} s ({made[0] / took:.1f}/s, asked {rate:g}/s), {failed[0]} failed")


def alerts(url, key, outbox, n, tag="a"):
    n = int(n)
    seen = {}
    if outbox.startswith("sqs:"):
        read_outbox, pause = sqs_reader(outbox[4:], seen), 0.01
    else:
        read_outbox, pause = outbox_reader(outbox, seen), 0.0005

    latencies = []
    stamp = f"{tag}{int(time.time())}"
    for i in range(n):
        anon = f"alert-{stamp}-{i}"
        # Three pricing views while anonymous, then the form that names the browser.
        for v in range(3):
            post(f"{url}/v1/page", {"type": "page", "messageId": f"{anon}-view-{v}", "anonymousId": anon,
                                    "name": "Pricing", "context": {"page": {"path": "/pricing"}}}, key)
        read_outbox()
        start = time.monotonic()
        answer = post(f"{url}/v1/forms/contact", {"email": f"{anon}@example.co.jp", "company": "Bench K.K.",
                                                  "employees": "1,200", "capital": "600億円", "anonymousId": anon})
        lead = answer["lead_id"]
        deadline = start + 30
        while lead not in seen and time.monotonic() < deadline:
            read_outbox()
            time.sleep(pause)
        if lead not in seen:
            print(f"no alert for submission {i} within 30 s", file=sys.stderr)
            continue
        latencies.append(seen[lead] - start)
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] * 1000

    if latencies:
        print(f"alert latency over {len(latencies)} submissions: p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {latencies[-1]*1000:.1f} ms")
    else:
        print("no alert arrived")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "alerts" and "--tag" in args:
        i = args.index("--tag")
        tag = args[i + 1]
        args = args[:i] + args[i + 2:]
        alerts(*args, tag=tag)
    else:
        {"dirty": dirty, "summary": summary, "alerts": alerts, "subscribe": subscribe, "pace": pace}[command](*args)
