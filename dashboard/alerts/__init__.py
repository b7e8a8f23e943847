"""Alerts: ``rules`` (the catalogue), ``words`` (what an alert says now), ``conditions``
(what is true now), ``lifecycle`` (raise, acknowledge, snooze, resolve; the publisher's
hook) and ``escalation`` (e-mail and Slack).

Import the module you need: this package imports none of them, so that the selectors can
read ``words`` without importing the rest.
"""
