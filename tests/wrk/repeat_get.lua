-- wrk script: the repeat GET of the executor for one browser session at the email
-- stage (run.sh passes the session cookie in SESSION_COOKIE).
wrk.method = "GET"
wrk.path = "/api/v3/flows/executor/recover/?query="
wrk.headers["Cookie"] = "ih_session=" .. os.getenv("SESSION_COOKIE")
wrk.headers["Accept"] = "application/json"
