"""The training loop's batch prefetcher: same batches in the same order, errors surface, early stop."""

import threading
import time

import pytest

from agridrone.training.fit import Prefetch


def test_prefetch_yields_every_item_in_order():
    assert list(Prefetch(iter(range(50)), depth=3)) == list(range(50))


def test_prefetch_works_ahead_of_the_consumer_but_no_further_than_its_depth():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    with Prefetch(items(), depth=3) as p:
        assert next(p) == 0
        time.sleep(0.3)  # the producer fills the queue meanwhile
        # one taken, three waiting in the queue, one held by the blocked producer
        assert 4 <= len(made) <= 5


def test_an_error_while_making_a_batch_is_raised_in_the_training_loop():
    def items():
        yield 1
        raise ValueError("labels/0001.txt: class 9 out of range")

    p = Prefetch(items(), depth=2)
    assert next(p) == 1
    with pytest.raises(ValueError, match="class 9 out of range"):
        next(p)


def test_leaving_early_stops_the_producer():
    made = []

    def items():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    with Prefetch(items(), depth=2) as p:
        for k, _ in enumerate(p):
            if k == 4:
                break
    n = len(made)
    time.sleep(0.3)
    assert len(made) == n <= 8
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
