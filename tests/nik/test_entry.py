"""The NIK entry editor: digits, backspace, cancel, timeout, masking; never raises."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kiosk.nik.entry import BULLET, EntryState, Key, NikEntry, mask_nik

NIK = "3171014506990001"


def type_in(entry: NikEntry, text: str, now: float = 0.0) -> str | None:
    result = None
    for ch in text:
        result = entry.press(ch, now)
    return result


def test_typing_then_enter_submits_and_forgets() -> None:
    entry = NikEntry()
    type_in(entry, NIK)
    assert entry.state is EntryState.TYPING and entry.length == 16
    assert entry.press(Key.ENTER, 1.0) == NIK
    assert entry.state is EntryState.SUBMITTED
    assert entry.length == 0 and entry.masked() == ""
    assert NIK not in repr(entry)


def test_backspace_and_cancel() -> None:
    entry = NikEntry()
    type_in(entry, "3172")
    entry.press(Key.BACKSPACE, 0.1)
    entry.press("1", 0.2)
    assert entry.masked() == "3171"
    entry.press(Key.CANCEL, 0.3)
    assert entry.state is EntryState.CANCELLED and entry.length == 0
    assert entry.press(Key.ENTER, 0.4) is None  # nothing to submit
    entry.press(Key.BACKSPACE, 0.5)  # backspace on empty is harmless
    assert entry.state is EntryState.IDLE


def test_more_than_16_digits_are_ignored_and_counted() -> None:
    entry = NikEntry()
    type_in(entry, NIK + "99")
    assert entry.length == 16 and entry.ignored == 2
    assert entry.press(Key.ENTER, 0.0) == NIK


def test_short_entry_is_submitted_for_a_specific_reason() -> None:
    entry = NikEntry()
    type_in(entry, "31710")
    assert entry.press(Key.ENTER, 0.0) == "31710"


def test_inactivity_timeout_clears_with_injected_clock() -> None:
    entry = NikEntry(timeout_s=20.0)
    type_in(entry, "3171", now=100.0)
    assert entry.poll(119.9) is EntryState.TYPING
    assert entry.poll(120.0) is EntryState.TIMED_OUT
    assert entry.length == 0
    entry.press("5", 121.0)  # a new key after a timeout starts afresh
    assert entry.state is EntryState.TYPING and entry.masked() == "5"


def test_timeout_counts_from_the_last_key() -> None:
    entry = NikEntry(timeout_s=20.0)
    type_in(entry, "31", now=0.0)
    entry.press("7", 15.0)
    assert entry.poll(34.0) is EntryState.TYPING
    assert entry.poll(35.0) is EntryState.TIMED_OUT


def test_unknown_keys_are_ignored() -> None:
    entry = NikEntry()
    for key in ("a", "３", "٣", "", "12", "enter!"):
        assert entry.press(key, 0.0) is None
    assert entry.length == 0


def test_masking_shows_region_and_serial_only() -> None:
    assert mask_nik(NIK) == f"3171 {BULLET * 4} {BULLET * 4} 0001"
    assert mask_nik("317101") == f"3171 {BULLET * 2}"
    assert mask_nik("31710145069") == f"3171 {BULLET * 4} {BULLET * 3}"
    assert mask_nik("3171014506990") == f"3171 {BULLET * 4} {BULLET * 4} 0"
    assert mask_nik("") == ""


keys = st.sampled_from([*"0123456789", Key.BACKSPACE, Key.ENTER, Key.CANCEL, "x", "٣"])


@given(st.lists(st.tuples(keys, st.floats(0, 30)), max_size=60))
def test_editor_never_raises_and_never_shows_the_middle(presses: list[tuple[str, float]]) -> None:
    entry = NikEntry(timeout_s=20.0)
    now = 0.0
    for key, gap in presses:
        now += gap
        submitted = entry.press(key, now)
        assert submitted is None or (1 <= len(submitted) <= 16 and submitted.isdigit())
        assert 0 <= entry.length <= 16
        shown = entry.masked().replace(" ", "")
        assert len(shown) == entry.length
        assert set(shown[4:12]) <= {BULLET}
