#!/usr/bin/env bash
# docs/benchmarks.md, "The API's own cost": requests/s at saturation on a cache hit, gunicorn 2 sync workers.
# The caller is a legacy person's user with a token (no any-tenant permission: the tenant wall runs on every
# answer); bu_list with the twin serving everyone, so every call after the first is answered from the cache.
# Uses the caller's environment (DATABASE_URL with seeded data, REDIS_URL). The token and the user are deleted
# at exit and the flag is put back to its cohort rules (its history keeps the two changes).
# Usage: bash docs/api-saturation.sh   (PORT=18750 CLIENTS=16 DURATION=15 ROUNDS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18750}
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
read -r LOGIN CLIENT TOKEN < <(.venv/bin/python manage.py shell -v 0 -c "
from django.contrib.auth.models import User
from query_backends.models import People
from rollout.models import ApiToken
person = People.objects.filter(loginid__isnull=False, client_id__gt=0).order_by('id').first()
user, _ = User.objects.get_or_create(username=person.loginid)
print(person.loginid, person.client_id, ApiToken.issue(user))" | tail -1)
DEBUG=0 ALLOWED_HOSTS=127.0.0.1 .venv/bin/gunicorn settings.wsgi -k sync -w 2 -b "127.0.0.1:$PORT" --log-level warning &
GUNICORN=$!
cleanup() {
  kill "$GUNICORN"
  .venv/bin/python manage.py rollout disable bu_list >/dev/null
  .venv/bin/python manage.py shell -v 0 -c "
from django.contrib.auth.models import User
User.objects.filter(username='$LOGIN', is_staff=False, is_superuser=False).delete()"
}
trap cleanup EXIT
.venv/bin/python manage.py rollout enable bu_list >/dev/null
sleep 4
URL="http://127.0.0.1:$PORT/api/queries/bu_list?bu_id=$CLIENT&fmt=array"
for round in $(seq "$ROUNDS"); do
  echo "round $round: $(cut -d' ' -f1-3 /proc/loadavg)"
  .venv/bin/python manage.py benchmark_shadow latency "$URL" --token "$TOKEN" --clients "$CLIENTS" --seconds "$DURATION"
done
