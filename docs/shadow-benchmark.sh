#!/usr/bin/env bash
# docs/benchmarks.md, "Shadow mode": user latency and throughput with shadow 0 % vs 100 %.
# Uses the caller's environment (DATABASE_URL with seeded data, CELERY_BROKER_URL) and expects a worker:
#   nice -n 19 .venv/bin/celery -A settings worker -c 2 -l warning &
# Usage: bash docs/shadow-benchmark.sh   (RATE=20 PORT=17850 SECONDS_EACH=20 by default)
# Leaves nothing behind: on exit (even after an error or ^C) bu_list's flag gets back every field it had, and the
# benchmark's user — with its token — is deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20}
PORT=${PORT:-17850}
SECONDS_EACH=${SECONDS_EACH:-20}
USERNAME="shadow-benchmark-$$"
PY=.venv/bin/python
SAVED=$($PY manage.py shell -v 0 -c "
import json
from rollout.models import QueryFlag
flag = QueryFlag.objects.get(name='orm.bu_list')
print(json.dumps({'everyone': flag.everyone, 'killed_by': flag.killed_by, 'shadow_percent': str(flag.shadow_percent)}))" | tail -1)
GUNICORN=""
cleanup() {
  [ -n "$GUNICORN" ] && kill "$GUNICORN" 2>/dev/null && wait "$GUNICORN" 2>/dev/null
  SAVED="$SAVED" USERNAME="$USERNAME" $PY manage.py shell -v 0 -c "
import json, os
from decimal import Decimal
from django.contrib.auth.models import User
from rollout.flags import writes
saved = json.loads(os.environ['SAVED'])
saved['shadow_percent'] = Decimal(saved['shadow_percent'])
def restore(flag):
    for field, value in saved.items():
        setattr(flag, field, value)
    return list(saved)
writes.write(['orm.bu_list'], restore, source='cli', reason='shadow-benchmark.sh: back as it was')
User.objects.filter(username=os.environ['USERNAME']).delete()  # and its token, with it
"
}
trap cleanup EXIT
TOKEN=$(USERNAME="$USERNAME" $PY manage.py shell -v 0 -c "
import os
from django.contrib.auth.models import Permission, User
from rollout.models import ApiToken
user = User.objects.create(username=os.environ['USERNAME'])
user.user_permissions.add(Permission.objects.get(codename='query_any_tenant'))
print(ApiToken.issue(user))" | tail -1)
.venv/bin/gunicorn settings.wsgi -k sync -w 2 -b "127.0.0.1:$PORT" --log-level warning &
GUNICORN=$!
sleep 4
URL="http://127.0.0.1:$PORT/api/queries/bu_list?bu_id=2&fmt=array"
$PY manage.py rollout enable bu_list >/dev/null
for pct in 0 100; do
  $PY manage.py rollout shadow bu_list $pct >/dev/null; sleep 2.5
  echo "saturation, shadow $pct %: $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY manage.py benchmark_shadow latency "$URL" --token "$TOKEN" --clients 16 --seconds 15
done
for round in 1 2; do
  for pct in 0 100; do
    $PY manage.py rollout shadow bu_list $pct >/dev/null; sleep 2.5
    echo "round $round, shadow $pct % at $RATE req/s: load $(cut -d' ' -f1-3 /proc/loadavg)"
    $PY manage.py benchmark_shadow latency "$URL" --token "$TOKEN" --rate "$RATE" --seconds "$SECONDS_EACH"
  done
done
