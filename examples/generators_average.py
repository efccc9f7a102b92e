"""Delegation with `yield from`, for the chapter "Generators": a generator that averages the numbers
sent to it, and one that delegates to it, forwarding every send and throw and receiving its result.

Run it on its own with `python examples/generators_average.py`.
"""


# ANCHOR: average
class Reset(Exception):
    """Thrown into an average to make it forget the numbers it has seen."""


def average():
    """Receives numbers by send() until it is sent None, then returns their mean."""
    total, count = 0, 0
    while True:
        try:
            number = yield count      # hands out how many numbers it holds so far
        except Reset:
            total, count = 0, 0
            continue
        if number is None:
            return total / count
        total, count = total + number, count + 1


def report(label):
    """Delegates to average(): what it yields, and every send and throw, pass straight through."""
    mean = yield from average()       # the subgenerator's return value
    yield f"{label}: {mean}"
    return mean
# ANCHOR_END: average


if __name__ == "__main__":
    latency = report("latency")
    print(next(latency), latency.send(10), latency.send(99), latency.throw(Reset()),
          latency.send(20), latency.send(40), latency.send(None))
