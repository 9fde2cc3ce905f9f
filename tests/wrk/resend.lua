-- wrk script: "Send Email again." POSTs for one browser session at the email stage
-- (an unknown address: rate-limited after the limit, decoys before it).
wrk.method = "POST"
wrk.path = "/api/v3/flows/executor/recover/?query="
wrk.body = '{"component": "ak-stage-email"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Cookie"] = "ih_session=" .. os.getenv("SESSION_COOKIE")
