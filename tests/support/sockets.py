"""A socket that receives a given byte stream in pieces (for the raw readers of plugins/module_utils/_wire.py)."""

import contextlib
import socket
import threading


@contextlib.contextmanager
def receiving(stream, step):
    """Yield the reading end of a socket pair whose other end sends ``stream`` ``step`` bytes at a time."""
    left, right = socket.socketpair()
    thread = None
    try:
        def feed():
            for pos in range(0, len(stream), step):
                left.sendall(stream[pos:pos + step])

        thread = threading.Thread(target=feed)
        thread.start()
        yield right
    finally:
        if thread is not None:
            thread.join()
        left.close()
        right.close()
