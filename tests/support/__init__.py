"""What the tests share: servers, waits, browser helpers, the simulator, the cluster.

No test module imports another; what two of them need lives here (or in tests/factories.py).
"""
