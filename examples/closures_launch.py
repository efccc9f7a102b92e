"""One launch sequence written twice, for the chapter "Closures": as a closure, which must count its
own steps to know where it is, and as a generator, which simply resumes where it stopped.

Run it on its own with `python examples/closures_launch.py`.
"""


# ANCHOR: closure
def make_launch():
    step = 0  # the closure's only memory of where it is

    def next_word():
        nonlocal step
        step += 1
        if step == 1:
            return "ready"
        if step == 2:
            return "steady"
        return "go"

    return next_word
# ANCHOR_END: closure


# ANCHOR: generator
def launch():
    yield "ready"
    yield "steady"
    yield "go"
# ANCHOR_END: generator


if __name__ == "__main__":
    word = make_launch()
    print([word() for _ in range(3)], list(launch()))
