"""core/result_cache.py: content-addressed answers; a changed input is a new key, a damaged entry a miss."""
import json

from flytebuild.core.result_cache import Memo, ResultCache, result_key


def test_keys_follow_every_part_and_name_their_kind():
    a = result_key("introspect", "m:wf", {"x": 1}, b"script")
    assert a.startswith("introspect-") and a == result_key("introspect", "m:wf", {"x": 1}, b"script")
    assert a != result_key("introspect", "m:wf", {"x": 2}, b"script")
    assert a != result_key("introspect", "m:wf", {"x": 1}, b"script2")
    assert a != result_key("serialize", "m:wf", {"x": 1}, b"script")


def test_round_trip_damaged_entries_and_no_directory(tmp_path):
    cache = ResultCache(str(tmp_path / "results"))
    key = result_key("introspect", "m:wf")
    assert cache.get(key) is None
    cache.put(key, json.dumps({"tasks": []}))
    assert json.loads(cache.get(key)) == {"tasks": []}
    (path,) = (tmp_path / "results").rglob("introspect-*.json")
    path.write_text('{"tasks": [')  # cut short
    assert cache.get(key) is None
    off = ResultCache(None)
    off.put(key, "{}")
    assert off.get(key) is None


def test_memo_answers_from_memory_after_one_read_and_drops_the_least_recently_used(tmp_path):
    cache = ResultCache(str(tmp_path / "results"))
    memo: Memo[str] = Memo(budget=4, weigh=len)
    reads = []

    def make(text):
        reads.append(text)
        return text.upper()

    assert memo.get_or_read("introspect-a", cache, make) is None  # neither has it: nothing is made
    cache.put("introspect-a", '"a"')
    assert memo.get_or_read("introspect-a", cache, make) == '"A"'
    for entry in (tmp_path / "results").rglob("*.json"):
        entry.unlink()  # from now on only the memory can answer
    assert memo.get_or_read("introspect-a", cache, make) == '"A"' and reads == ['"a"']
    memo.put("introspect-b", "b")
    memo.get("introspect-a")  # used last: b is now the oldest
    memo.put("introspect-c", "c")
    assert memo.get("introspect-b") is None and memo.get("introspect-a") == '"A"' and memo.get("introspect-c") == "c"
