#!/usr/bin/env bash
# docs/benchmarks.md, "Shadow mode": user latency and throughput with shadow 0 % vs 100 %.
# Uses the caller's environment (DATABASE_URL with seeded data, CELERY_BROKER_URL) and expects a worker:
#   nice -n 19 .venv/bin/celery -A settings worker -c 2 -l warning &
# Usage: bash docs/shadow-benchmark.sh   (RATE=20 PORT=17850 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20}
PORT=${PORT:-17850}
TOKEN=$(.venv/bin/python manage.py shell -v 0 -c "
from django.contrib.auth.models import Permission, User
from rollout.models import ApiToken
user, _ = User.objects.get_or_create(username='shadow-benchmark')
user.user_permissions.add(Permission.objects.get(codename='query_any_tenant'))
print(ApiToken.issue(user))" | tail -1)
.venv/bin/gunicorn settings.wsgi -w 2 -b "127.0.0.1:$PORT" --log-level warning &
GUNICORN=$!
trap 'kill $GUNICORN; .venv/bin/python manage.py rollout shadow bu_list 0 >/dev/null' EXIT
sleep 4
URL="http://127.0.0.1:$PORT/api/queries/bu_list?bu_id=2&fmt=array"
.venv/bin/python manage.py rollout enable bu_list >/dev/null
for pct in 0 100; do
  .venv/bin/python manage.py rollout shadow bu_list $pct >/dev/null; sleep 2.5
  echo "saturation, shadow $pct %: $(uptime | sed 's/.*load/load/')"
  .venv/bin/python manage.py benchmark_shadow latency "$URL" --token "$TOKEN" --clients 16 --seconds 15
done
for round in 1 2; do
  for pct in 0 100; do
    .venv/bin/python manage.py rollout shadow bu_list $pct >/dev/null; sleep 2.5
    echo "round $round, shadow $pct % at $RATE req/s: $(uptime | sed 's/.*load/load/')"
    .venv/bin/python manage.py benchmark_shadow latency "$URL" --token "$TOKEN" --rate "$RATE" --seconds 20
  done
done
