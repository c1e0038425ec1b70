"""RepeatFilter: one decision per code held up, re-armed after rearm_s out of view."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.decode import RepeatFilter

FPS = 15.0


def run(filt: RepeatFilter, frames: list[tuple[float, list[str]]]) -> list[tuple[float, str]]:
    """Feed (time, texts) frames; return every emission with its time."""
    out: list[tuple[float, str]] = []
    for now, texts in frames:
        out.extend((now, text) for text in filt.feed(texts, now))
    return out


def held(code: str, start: float, seconds: float) -> list[tuple[float, list[str]]]:
    """A code in view in every frame for ``seconds`` at 15 fps."""
    return [(start + i / FPS, [code]) for i in range(int(seconds * FPS))]


def empty(start: float, seconds: float) -> list[tuple[float, list[str]]]:
    return [(start + i / FPS, []) for i in range(int(seconds * FPS))]


def test_a_code_held_up_for_three_seconds_is_one_decision() -> None:
    assert run(RepeatFilter(2.0), held("A", 0.0, 3.0)) == [(0.0, "A")]


def test_frames_where_the_decoder_misses_the_code_do_not_retrigger() -> None:
    frames = held("A", 0.0, 1.0) + empty(1.0, 0.5) + held("A", 1.5, 1.0)
    assert run(RepeatFilter(2.0), frames) == [(0.0, "A")]


def test_out_of_view_shorter_than_rearm_is_not_emitted_again() -> None:
    filt = RepeatFilter(2.0)
    assert filt.feed(["A"], 10.0) == ["A"]
    assert filt.feed(["A"], 11.99) == []


def test_out_of_view_for_rearm_or_longer_is_emitted_again() -> None:
    filt = RepeatFilter(2.0)
    assert filt.feed(["A"], 10.0) == ["A"]
    assert filt.feed(["A"], 12.0) == ["A"]  # exactly rearm_s: counts again
    assert filt.feed(["A"], 12.5) == []


def test_rearm_counts_from_when_the_code_was_last_seen() -> None:
    # Held for 5 s then shown again 1 s later: still the same scan.
    frames = held("A", 0.0, 5.0) + held("A", 6.0, 1.0)
    assert run(RepeatFilter(2.0), frames) == [(0.0, "A")]


def test_two_codes_are_tracked_independently() -> None:
    filt = RepeatFilter(2.0)
    assert filt.feed(["A"], 0.0) == ["A"]
    assert filt.feed(["A", "B"], 0.5) == ["B"]
    assert filt.feed(["B"], 1.0) == []
    assert filt.feed(["A", "B"], 2.6) == ["A"]  # A was gone 2.1 s; B never left


def test_duplicates_within_a_frame_emit_once() -> None:
    assert RepeatFilter(2.0).feed(["A", "B", "A"], 0.0) == ["A", "B"]


def test_zero_rearm_emits_in_every_frame() -> None:
    filt = RepeatFilter(0.0)
    assert [filt.feed(["A"], t) for t in (0.0, 0.0, 0.1)] == [["A"], ["A"], ["A"]]


def test_codes_gone_for_rearm_are_forgotten() -> None:
    filt = RepeatFilter(2.0)
    filt.feed(["A", "B", "C"], 0.0)
    assert filt.tracked == 3
    filt.feed([], 1.0)
    assert filt.tracked == 3
    filt.feed([], 2.0)
    assert filt.tracked == 0


def test_memory_is_capped() -> None:
    filt = RepeatFilter(60.0, max_tracked=8)
    for i in range(1000):
        filt.feed([f"code-{i}"], i * 0.01)
        assert filt.tracked <= 8


@pytest.mark.parametrize(("rearm", "cap"), [(-1.0, 4), (float("nan"), 4), (1.0, 0)])
def test_invalid_bounds_are_rejected(rearm: float, cap: int) -> None:
    with pytest.raises(ValueError):
        RepeatFilter(rearm, max_tracked=cap)


frames_strategy = st.lists(
    st.tuples(
        st.floats(0.0, 3.0, allow_nan=False),  # time since the previous frame, s
        st.lists(st.sampled_from("ABC"), max_size=4),  # codes decoded in this frame
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rearm=st.floats(0.0, 3.0, allow_nan=False), steps=frames_strategy)
def test_emissions_never_exceed_appearances_after_rearm_absence(
    rearm: float, steps: list[tuple[float, list[str]]]
) -> None:
    filt = RepeatFilter(rearm)
    last_seen: dict[str, float] = {}
    now = 0.0
    emitted = allowed = 0
    for dt, texts in steps:
        now += dt
        emitted_now = filt.feed(texts, now)
        assert len(emitted_now) == len(set(emitted_now))
        for text in set(texts):
            if text not in last_seen or now - last_seen[text] >= rearm:
                allowed += 1
            last_seen[text] = now
        emitted += len(emitted_now)
        assert emitted <= allowed
    # With fewer codes than the cap, the filter emits exactly the re-armed appearances.
    assert emitted == allowed


@settings(max_examples=100, deadline=None)
@given(
    cap=st.integers(1, 4),
    steps=st.lists(st.lists(st.text("ABCDEFG", min_size=1, max_size=2), max_size=6), max_size=40),
)
def test_tracked_codes_never_exceed_the_cap(cap: int, steps: list[list[str]]) -> None:
    filt = RepeatFilter(10.0, max_tracked=cap)
    for i, texts in enumerate(steps):
        filt.feed(texts, i * 0.1)
        assert filt.tracked <= cap
