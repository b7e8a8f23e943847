"""What a supervisor can do: transfer a chat, end it, change an operator's status, drain an
operator. Every attempt is an ``Action`` row (the audit trail) created *before* SalesIQ is
called, under the form's idempotency key: the same key twice never calls twice.

- services.py: ``chat_transfer``, ``chat_end``, ``operator_set_status`` (the operations)
- drain.py: ``operator_drain_plan``, ``operator_drain``
- locks.py: the record, its idempotency key and its lock (one action in flight per target)
- refusals.py: who may act; refused attempts counted and slowed down
- outcomes.py: the outcome on the record and to pages; later reads and SalesIQ's confirmation
- stuck.py: actions nobody will answer (the worker's sweep); runners.py: "host:pid"
- status_rules.py: whose status SalesIQ lets the dashboard set; who the grant acts as
- wording.py: every sentence a supervisor reads about an action
"""
