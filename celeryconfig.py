"""Operator overrides for the Celery app, loaded when importable (the server's checkout).

battletracker's own options (JSON only, acks_late, reject_on_worker_lost, prefetch 1, the
queues, routes and beat table) come from ``battletracker/app.py`` and the
``BATTLETRACKER_*`` settings; anything set here is laid on top of them. Leave the safety
options alone: the pipeline's "nothing lost, nothing doubled" rests on them.
"""

#: Detect a dead broker connection within a minute.
broker_heartbeat = 30

#: Recycle worker processes now and then (bounded memory over weeks of uptime).
worker_max_tasks_per_child = 500

#: Beat keeps its schedule state beside the checkout.
beat_schedule_filename = "celerybeat-schedule"
