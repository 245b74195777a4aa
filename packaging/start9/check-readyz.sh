#!/bin/sh
# StartOS 0.3.5 health check (type: docker, inject: true). StartOS writes the
# milliseconds since start on stdin. Exit 60 = starting, 0 = healthy, 1 = failing
# with the reason on stderr.
DURATION=$(cat)
if [ "${DURATION:-0}" -le 15000 ]; then
    exit 60
fi
PORT="${SOVTERM_LISTENER__PORT:-8080}"
if python -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % sys.argv[1], timeout=4)" "$PORT" 2>/dev/null; then
    exit 0
fi
echo "Sovterm is not ready: /readyz did not answer 200 (see the service logs)" >&2
exit 1
