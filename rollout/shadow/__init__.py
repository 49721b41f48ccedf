"""Shadow mode: the other side runs off the request path, both answers are compared, differences recorded.

job.py      the request side: a typed, immutable Job (and its wire form) built from what a call did
queue.py    the in-process queue, the Celery publisher and the drain at shutdown
tasks.py    the Celery task that judges and publishes a batch
judge.py    both sides in one never-committed snapshot → a Result
result.py   the Result and the one list of result kinds
publish.py  the one seam through which Results reach the records, the metrics and the guard
recorder.py discrepancy records; guard.py the guard; replay.py a recorded discrepancy run again

Nothing is imported here: the request path loads job.py and queue.py only.
"""
