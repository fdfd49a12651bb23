"""Writes N decision records (mixed portal / App+User / App-only, 200 users, 4 applications, over
the 8 days before 2026-01-01) to a JSON-lines file: the input of benches/report_load.sh and
benches/report_vs_duckdb.sh. Usage: python3 benches/report_records.py N OUT"""
import json, random, sys, time

n, out = int(sys.argv[1]), sys.argv[2]
random.seed(1)
base = 1767225600
with open(out, "w") as f:
    for i in range(n):
        ts = base - random.randint(0, 8 * 86400)
        k = random.random()
        if k < 0.2: ch, pr, mfa = "portal", "user", random.random() < 0.8
        elif k < 0.5: ch, pr, mfa = "api", "app_only", None
        else: ch, pr, mfa = "api", "app_user", random.random() < 0.7
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % random.randint(0, 999)
        f.write(json.dumps({"ts": t, "request_id": "r%d" % i, "correlation_id": None, "channel": ch,
            "route": "partner-api", "method": "GET", "path": "/v1/customers", "operation": "GET /v1/",
            "source_ip": "10.0.0.%d" % (i % 250), "issuer": "entra", "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "object_id": "00000000-0000-4000-8000-%012d" % (i % 200), "upn": "user%d@contoso.test" % (i % 200),
            "app_id": "app-%d" % (i % 4), "principal": pr, "amr": ["pwd", "mfa"] if mfa else ["pwd"], "mfa": mfa,
            "decision": "allow", "enforced": True, "reason": "mfa_satisfied", "status": 200, "latency_us": 800}) + "\n")
