"""Polling: keeps every connected portal's live state true to SalesIQ.

``leases`` says which portals this worker polls (one worker per portal, balanced across
the live workers), ``planner`` how often each listing is due on the portal's budget,
``poller`` runs the listings, and ``runner`` ticks them, with the jobs of ``dashboard.jobs``,
in one runtime (``manage.py siq_worker`` and the worker embedded in ``manage.py serve``).
"""
