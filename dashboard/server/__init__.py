"""The HTTP and websocket server (daphne): how it runs, its body cap, its speed-ups."""
