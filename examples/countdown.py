"""A countdown as a generator: the listing the appendix "How this book is tested" includes by anchor.

Run it on its own with `python examples/countdown.py`.
"""


# ANCHOR: countdown
def countdown(n):
    """Yields n, n - 1, ..., 1, then returns a word."""
    while n > 0:
        yield n
        n -= 1
    return "liftoff"
# ANCHOR_END: countdown


if __name__ == "__main__":
    print(list(countdown(3)))
