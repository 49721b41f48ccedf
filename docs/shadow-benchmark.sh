#!/usr/bin/env bash
# docs/benchmarks.md, "Shadow mode": what shadow 100 % asked costs callers, the twin serving, at a fixed rate.
# Uses the caller's environment (DATABASE_URL with seeded data; the broker: CELERY_BROKER_URL, else REDIS_URL) and
# expects one Celery worker, niced, on the same machine:
#   nice -n 19 .venv/bin/celery -A settings worker -c 1 -l warning &
# Usage: bash docs/shadow-benchmark.sh   (QUERIES="job_needs asset_questionsets" RATE=100 SECONDS_EACH=20 ROUNDS=4 WARMUP=20
#        SETS=60 PORT=17850 by default)
# gunicorn serves as the shipped gunicorn.conf.py says (threaded workers). For each query: its twin serves
# everyone, the open-loop client requests SETS parameter sets in turn at RATE req/s, in windows of SECONDS_EACH
# alternating shadow 0 % and 100 % (ABBA, ROUNDS rounds of two) after a warm-up window at 100 % (WARMUP s, not
# counted: the budget measures what comparisons cost before it caps them), and prints each window and the medians.
# Leaves nothing behind: on exit (even after an error or ^C) the flags get back every field they had
# (`rollout flags --apply`), and the benchmark's user — with its token — is deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
QUERIES=${QUERIES:-job_needs asset_questionsets}
RATE=${RATE:-100}
PORT=${PORT:-17850}
SECONDS_EACH=${SECONDS_EACH:-20}
WARMUP=${WARMUP:-20}
ROUNDS=${ROUNDS:-4}
SETS=${SETS:-60}
USERNAME="shadow-benchmark-$$"
PY=.venv/bin/python
WORK=$(mktemp -d)
# shellcheck disable=SC2086  # QUERIES is a list of names
$PY manage.py rollout flags --export $QUERIES >"$WORK/flags.json"
GUNICORN=""
cleanup() {
  [ -n "$GUNICORN" ] && kill "$GUNICORN" 2>/dev/null && wait "$GUNICORN" 2>/dev/null
  $PY manage.py rollout flags --apply "$WORK/flags.json" >/dev/null
  USERNAME="$USERNAME" $PY manage.py shell -v 0 -c "
import os
from django.contrib.auth.models import User
User.objects.filter(username=os.environ['USERNAME']).delete()  # and its token, with it
"
  rm -rf "$WORK"
}
trap cleanup EXIT
TOKEN=$(USERNAME="$USERNAME" $PY manage.py shell -v 0 -c "
import os
from django.contrib.auth.models import Permission, User
from rollout.models import ApiToken
user = User.objects.create(username=os.environ['USERNAME'])
user.user_permissions.add(Permission.objects.get(codename='query_any_tenant'))
print(ApiToken.issue(user))" | tail -1)
DEBUG=false .venv/bin/gunicorn settings.wsgi -b "127.0.0.1:$PORT" --log-level warning &
GUNICORN=$!
sleep 4
echo "gunicorn.conf.py: $(grep -E '^(workers|worker_class|threads) ' gunicorn.conf.py | tr '\n' ' ')"
for query in $QUERIES; do
  QUERY=$query SETS=$SETS PORT=$PORT $PY manage.py shell -v 0 -c "
import os
from urllib.parse import urlencode
from rollout.experiments import get_experiment
experiment = get_experiment(os.environ['QUERY'])
for params in experiment.sample(int(os.environ['SETS']), seed=3):
    text = {k: v.isoformat() if hasattr(v, 'isoformat') else str(v).lower() if isinstance(v, bool) else v
            for k, v in params.items()}
    print(f\"http://127.0.0.1:{os.environ['PORT']}/api/queries/{experiment.name}?{urlencode(text)}\")
" >"$WORK/$query.urls"
  $PY manage.py rollout enable "$query" >/dev/null
  echo "$query: $(wc -l <"$WORK/$query.urls") parameter sets in turn, $RATE req/s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY manage.py benchmark_shadow latency --urls-from "$WORK/$query.urls" --token "$TOKEN" --rate "$RATE" \
    --seconds "$SECONDS_EACH" --alternate "$query" --rounds "$ROUNDS" --warmup "$WARMUP"
done
