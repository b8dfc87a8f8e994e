"""The HTTP part of the demo, as an analyst would do it: sign in with a password on the sign-in
page (CSRF token, session cookie), read "who am I", then submit the job with an API token and
read its status. Standard library only. Usage: demo_http.py BASE_URL TOKEN_FILE PASSWORD_FILE
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr)


def main() -> None:
    base, token_file, password_file = sys.argv[1:4]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = browser.open(f"{base}/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    password = Path(password_file).read_text().strip()
    data = urllib.parse.urlencode({"name": "li", "password": password, "csrf_token": csrf})
    page = browser.open(f"{base}/login", data=data.encode()).read().decode()
    name = re.search(r'id="display-name">([^<]+)<', page).group(1)  # type: ignore[union-attr]
    say("signed in on /login; the who-am-I page says:", name)
    me = json.loads(browser.open(f"{base}/api/me").read())
    say("GET /api/me with the session cookie:", json.dumps(me, ensure_ascii=False))

    token = Path(token_file).read_text().strip()
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {"headcount.sql": (EXAMPLE / "headcount.sql").read_text()},
    }
    request = urllib.request.Request(
        f"{base}/api/jobs",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    job = json.loads(urllib.request.urlopen(request).read())
    say(f"POST /api/jobs with li's API token: {job['id']} {job['state']}")
    print(job["id"])  # the one line on stdout: the job id


if __name__ == "__main__":
    main()
