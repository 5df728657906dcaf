"""Checks callbacks with the official twilio SDK's RequestValidator.

Reads a JSON list of {url, params, signature} on stdin and the auth token from
TWILIO_AUTH_TOKEN; prints "OK <n>" when every signature validates, else names the
first that does not and exits 1.
"""

import json
import os
import sys

from twilio.request_validator import RequestValidator


def main() -> int:
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    callbacks = json.load(sys.stdin)
    for cb in callbacks:
        if not validator.validate(cb["url"], cb["params"], cb["signature"]):
            print(f"INVALID {cb['url']} {cb['params']}")
            return 1
        # A changed parameter must not validate.
        forged = dict(cb["params"], To="+19999999999")
        if validator.validate(cb["url"], forged, cb["signature"]):
            print(f"FORGED ACCEPTED {cb['url']}")
            return 1
    print(f"OK {len(callbacks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
