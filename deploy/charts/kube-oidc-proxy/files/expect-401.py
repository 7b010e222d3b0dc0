# The helm test's check (templates/tests/test-unauthenticated.yaml): GET the URL in argv[1] without a token
# and expect the proxy's answer, a 401 with a Kubernetes Status body. Retries while the Service has no
# ready endpoint yet.
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

url = sys.argv[1]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
for attempt in range(10):
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            print(f"FAIL: {url} answered {response.status} to a request without a token, expected 401")
            sys.exit(1)
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            status = json.loads(body)
        except ValueError:
            status = {}
        if error.code == 401 and status.get("kind") == "Status":
            print(f"OK: {url} refused a request without a token: {status.get('message', '')}")
            sys.exit(0)
        print(f"FAIL: {url} answered {error.code} {body[:200]!r}, expected a 401 Status")
        sys.exit(1)
    except OSError as error:
        print(f"{url}: {error} (attempt {attempt + 1})")
        time.sleep(3)
print(f"FAIL: could not reach {url}")
sys.exit(1)
