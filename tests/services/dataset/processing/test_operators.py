"""Each cleaning operator's effect on real records (pure: the operators as the Ray tasks run them), the
user-rule sandbox, and a stage of operators over a batch of rows."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, get_args

import numpy as np
import orjson
import pytest
from forge_contracts.augmentation import AUGMENT_OPS
from forge_contracts.processing import (
    ExactDedup,
    Keywords,
    Language,
    NearDedup,
    Normalize,
    Pii,
    Pipeline,
    Quality,
    Rule,
    StripHtml,
)
from forge_data_runtime import stages
from forge_data_runtime.copies import AugmentStage
from forge_data_runtime.language import LanguageFilter
from forge_data_runtime.minhash import MinHasher, NearDuplicateIndex, tokens
from forge_data_runtime.sandbox import RuleFailed, RuleRunner
from forge_data_runtime.text import (
    HtmlStripper,
    KeywordFilter,
    Normalizer,
    PiiFilter,
    QualityFilter,
    resident_id_valid,
)
from pydantic import ValidationError

from tests.services.dataset.processing.corpus import GERMAN, near_copy, prose


def test_markup_becomes_its_text_with_scripts_styles_and_entities_handled() -> None:
    strip = HtmlStripper(StripHtml(op="strip_html", fields=["text", "title"]))
    record = {
        "text": "<html><head><style>p{color:red}</style></head><body><h1>Title</h1><p>One <b>bold</b> "
        "word &amp; more.</p><script>alert('x')</script><ul><li>a</li><li>b</li></ul></body></html>",
        "title": "Plain &lt;text&gt; stays readable",
        "id": 7,
    }
    assert strip.apply(record) is None
    assert record["text"] == "Title\nOne bold word & more.\na\nb"
    assert record["title"] == "Plain <text> stays readable"
    assert record["id"] == 7
    untouched = {"text": "no markup here: 3 < 4"}
    strip.apply(untouched)
    assert untouched["text"] == "no markup here: 3 < 4"
    assert (
        strip.apply({"text": "<script>only()</script>", "title": "<br>"})
        == "no text left after removing markup"
    )


def test_normalisation_composes_unicode_removes_controls_and_collapses_whitespace() -> None:
    normalize = Normalizer(Normalize(op="normalize"))
    record = {
        "text": "\uff26\uff55\uff4c\uff4c\u00a0width  and\tcafe\u0301\u200b here\r\n\n\n\nnext  line  ",
        "n": 1,
    }
    normalize.apply(record)
    assert record["text"] == "Full width and café here\n\nnext line"
    lower = Normalizer(Normalize(op="normalize", form="NFC", lowercase=True, collapse_whitespace=False))
    assert lower.text("ÄB  C") == "äb  c"


def test_language_is_detected_annotated_and_filtered() -> None:
    keep_english = LanguageFilter(Language(op="language", keep=["en"]))
    english = {"text": prose(1)}
    assert keep_english.apply(english) is None and english["language"] == "en"
    german = {"text": GERMAN}
    assert keep_english.apply(german) is not None and german["language"] == "de"
    chinese = {"text": "机器学习平台把原始数据变成可以交付的模型，标注和训练都在同一个地方完成。"}  # noqa: RUF001
    annotate_only = LanguageFilter(Language(op="language", annotate="lang"))
    assert annotate_only.apply(chinese) is None and chinese["lang"] == "zh"
    sure = LanguageFilter(Language(op="language", min_confidence=0.99))
    assert sure.apply({"text": "ok"}) is not None  # too short to be sure of anything


@pytest.mark.parametrize(
    ("text", "check", "reason"),
    [
        ("Too short to be a document.", {}, "words < min_words"),
        (prose(3) + " " + "#tag " * 30, {}, "symbol/word ratio"),
        (
            "\n".join(f"- item {i} of the list with the and" for i in range(30)),
            {"min_words": 10},
            "bullet line ratio",
        ),
        (
            "\n".join(f"line {i} of the story and then..." for i in range(30)),
            {"min_words": 10, "max_symbol_word_ratio": None},
            "ellipsis line ratio",
        ),
        (
            " ".join(["1234 5678 90 and the"] * 20),
            {"min_words": 10, "max_top_ngram_ratio": {}},
            "alphabetic word",
        ),
        ("words " * 60, {"min_stop_words": 2}, "stop words < min_stop_words"),
        (
            "\n".join(["the same line of the text"] * 10 + [prose(4)]),
            {"min_words": 10},
            "duplicate line ratio",
        ),
        (
            " ".join(["the cat and the dog"] * 20),
            {"min_words": 10, "max_duplicate_lines_ratio": None},
            "top 2-gram",
        ),
        (prose(5) + " Lorem ipsum dolor sit amet.", {}, "lorem ipsum"),
        ("supercalifragilisticexpialidocious " * 60 + "the and", {}, "mean word length"),
    ],
)
def test_quality_heuristics_drop_what_they_measure(text: str, check: dict[str, Any], reason: str) -> None:
    params = Quality(op="quality", **check)
    found = QualityFilter(params).apply({"text": text})
    assert found is not None and reason in found, found


def test_quality_passes_prose_and_each_check_can_be_turned_off() -> None:
    assert QualityFilter(Quality(op="quality", min_words=20)).apply({"text": prose(8)}) is None
    off = Quality(op="quality", min_words=None, min_stop_words=None, min_alpha_words_ratio=None)
    assert QualityFilter(off).apply({"text": "Short."}) is None
    assert QualityFilter(Quality(op="quality")).apply({"other": 1}) is None  # no text: passed on


def test_keywords_match_whole_words_case_insensitively_and_cjk_anywhere() -> None:
    keywords = KeywordFilter(Keywords(op="keywords", keywords=["casino", "赌博"]))
    assert keywords.apply({"text": "Visit our CASINO tonight"}) == "keyword 'CASINO' in text"
    assert keywords.apply({"text": "occasionally casinos"}) is None  # not the whole word
    assert keywords.apply({"text": "网上赌博是违法的"}) is not None
    anywhere = KeywordFilter(Keywords(op="keywords", keywords=["casino"], whole_words=False))
    assert anywhere.apply({"text": "casinos"}) is not None


def test_personal_data_is_masked_or_the_record_dropped() -> None:
    pii = PiiFilter(Pii(op="pii"))
    record = {
        "text": "Mail ann.lee+x@example.co.uk, call +1 415-555-0100 or 13800138000, "
        "ID 11010519491231002X, SSN 078-05-1120, from 192.168.1.20; order 110105194912310021 stays.",
    }
    assert pii.apply(record) is None
    assert record["text"] == (
        "Mail [EMAIL], call [PHONE] or [PHONE], ID [ID], SSN [ID], from [IP]; order 110105194912310021 stays."
    )
    assert resident_id_valid("11010519491231002X") and not resident_id_valid("110105194912310021")
    only_email = PiiFilter(Pii(op="pii", kinds=["email"], action="drop"))
    assert only_email.apply({"text": "write to a@b.io"}) == "personal data (email) in text"
    assert only_email.apply({"text": "call 13800138000"}) is None


def _rows(records: list[dict[str, Any]]) -> stages.Batch:
    return stages.rows(list(range(len(records))), [orjson.dumps(r) for r in records])


def test_a_stage_applies_its_operators_in_order_and_keeps_dropped_rows_with_their_reason() -> None:
    ops = [
        StripHtml(op="strip_html"),
        Quality(op="quality", min_words=3, min_stop_words=None),
        Pii(op="pii"),
    ]
    batch = _rows(
        [
            {"text": "<b>bold</b> words are here"},
            {"text": "<i>x</i>"},
            {"text": "please write to a@b.io today"},
        ]
    )
    out = stages.RowStage(ops, 0, 0, str)(batch)
    assert out["_drop"].tolist() == [-1, 1, -1]
    assert out["_why"][1].startswith("quality: 1 words")
    assert orjson.loads(out["_json"][1]) == {"text": "x"}  # as the dropping operator saw it
    assert orjson.loads(out["_json"][2])["text"] == "please write to [EMAIL] today"
    assert out["_chg"].tolist() == [1, 1, 4]  # a bit per operator that changed the row
    notes = orjson.loads(out["_notes"][0])
    assert notes == [
        {"op": 0, "before": {"text": "<b>bold</b> words are here"}, "after": {"text": "bold words are here"}}
    ]


def test_exact_dedup_keys_compare_chosen_fields_optionally_normalised() -> None:
    batch = _rows([{"text": "A  b", "id": 1}, {"text": "a b", "id": 2}, {"text": "A  b", "id": 3}])
    by_text = stages.exact_keys(ExactDedup(op="exact_dedup", fields=["text"]), batch)
    keys = list(zip(by_text["_high"].tolist(), by_text["_low"].tolist(), strict=True))
    assert keys[0] == keys[2] != keys[1]
    normalised = stages.exact_keys(ExactDedup(op="exact_dedup", fields=["text"], normalize=True), batch)
    assert len(set(zip(normalised["_high"].tolist(), normalised["_low"].tolist(), strict=True))) == 1
    whole = stages.exact_keys(ExactDedup(op="exact_dedup"), batch)
    assert len(set(zip(whole["_high"].tolist(), whole["_low"].tolist(), strict=True))) == 3


def _jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = tokens(text, True)
        return set(zip(*[words[i:] for i in range(n)], strict=False))

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_near_dedup_finds_planted_near_duplicates_and_nothing_else(tmp_path: Path) -> None:
    rng = random.Random(5)
    vocabulary = [f"w{i}" for i in range(20_000)]
    docs = [" ".join(rng.choices(vocabulary, k=150)) for _ in range(400)]
    planted = {400 + i: i * 3 for i in range(40)}  # near copies of every third of the first 120
    docs += [near_copy(docs[original], 2, seed=k) for k, original in planted.items()]
    params = NearDedup(op="near_dedup", threshold=0.7)
    hasher = MinHasher(params, seed=0)
    index = NearDuplicateIndex(params, tmp_path)
    for start in range(0, len(docs), 128):  # in batches, as the Ray tasks send them
        signatures, has = hasher.signatures(docs[start : start + 128])
        assert has.all()
        index.add(np.arange(start, start + len(signatures)) + 1000, hasher.band_keys(signatures), signatures)
    clusters = index.clusters()
    duplicates = {
        int(clusters.ids[i]): int(clusters.ids[clusters.root[i]])
        for i in np.flatnonzero(clusters.root != np.arange(len(docs)))
    }
    assert duplicates == {k + 1000: v + 1000 for k, v in planted.items()}
    assert all(_jaccard(docs[k], docs[v]) >= 0.7 for k, v in planted.items())
    assert not list(tmp_path.glob("band-*.bin"))  # each band's spill is gone once read


def test_near_dedup_clusters_chains_under_their_first_record_and_skips_empty_texts(tmp_path: Path) -> None:
    base = prose(1) + " " + prose(2)
    chain = [base, near_copy(base, 1, 1), near_copy(near_copy(base, 1, 1), 1, 2), "", prose(9)]
    params = NearDedup(op="near_dedup", threshold=0.6)
    batch = _rows([{"text": t} for t in chain])
    keys = stages.NearKeys(params, seed=3)(batch)
    assert keys["_has"].tolist() == [True, True, True, False, True]
    index = NearDuplicateIndex(params, tmp_path)
    has = keys["_has"]
    index.add(keys["_rid"][has], keys["_bands"][has], keys["_sig"][has])
    clusters = index.clusters()
    assert clusters.ids[clusters.root].tolist() == [0, 0, 0, 4]


def test_minhash_signatures_estimate_jaccard_similarity() -> None:
    params = NearDedup(op="near_dedup", bands=32, rows=8, threshold=None)
    hasher = MinHasher(params, seed=11)
    rng = random.Random(2)
    words = [f"t{i}" for i in range(5000)]
    pairs = []
    for k in range(20):
        a = " ".join(rng.choices(words, k=200))
        pairs.append((a, near_copy(a, k * 2, seed=k)))
    errors = []
    for a, b in pairs:
        signatures, _ = hasher.signatures([a, b])
        estimate = float((signatures[0] == signatures[1]).mean())
        errors.append(abs(estimate - _jaccard(a, b)))
    assert float(np.mean(errors)) < 0.05


def test_user_rules_filter_and_map_records_in_the_sandbox() -> None:
    records = [{"id": i, "text": f"item {i}"} for i in range(300)]  # more than one sandbox chunk
    names = [f"r{i}" for i in range(300)]
    keep_even = RuleRunner(Rule(op="rule", expression="id % 2 == 0 and re.match('item', text)"), 0, 0)
    assert keep_even.run(records, names) == [i % 2 == 0 for i in range(300)]
    mapper = RuleRunner(
        Rule(
            op="rule",
            mode="map",
            function="def rule(record):\n    if record['id'] > 1:\n        return None\n"
            "    return {**record, 'upper': record['text'].upper()}\n",
        ),
        0,
        0,
    )
    assert mapper.run(records[:3], names[:3]) == [
        {"id": 0, "text": "item 0", "upper": "ITEM 0"},
        {"id": 1, "text": "item 1", "upper": "ITEM 1"},
        None,
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (Rule(op="rule", expression="1 / (id - 2)"), "on record r2: ZeroDivisionError"),
        (
            Rule(op="rule", function="def rule(record):\n    while True:\n        pass\n", timeout_s=1),
            "used up its 1 s",
        ),
        (
            Rule(op="rule", expression="__import__('socket').create_connection(('1.1.1.1', 53))"),
            "not allowed",
        ),
        (Rule(op="rule", expression="open('/etc/hostname').read()"), "not allowed in a rule: open"),
        (Rule(op="rule", expression="__import__('subprocess').run(['id'])"), "not allowed in a rule: import"),
        (Rule(op="rule", expression="len('x' * (1 << 34))", memory_mb=128), "MemoryError"),
        (Rule(op="rule", mode="map", expression="42"), "a map rule returns a JSON object or None, not int"),
    ],
)
def test_a_rule_that_raises_loops_or_reaches_outside_fails_with_a_clear_message(
    rule: Rule, message: str
) -> None:
    records = [{"id": i} for i in range(4)]
    with pytest.raises(RuleFailed, match="op 3 \\(rule 'rule'\\)") as failed:
        RuleRunner(rule, 2, 0).run(records, [f"r{i}" for i in range(4)])
    assert message in str(failed.value)


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "shuffle"}],
        [{"op": "near_dedup", "bands": 64, "rows": 32}],
        [{"op": "rule", "expression": "x ="}],
        [{"op": "rule", "expression": "1", "function": "def rule(r):\n    return 1\n"}],
        [{"op": "pii", "kinds": ["passport"]}],
        [{"op": "language", "keep": ["english"]}],
        [],
    ],
)
def test_bad_pipelines_are_refused_by_their_declaration(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        Pipeline.model_validate({"ops": ops})


def test_every_operator_named_in_the_contract_is_built_by_the_runtime() -> None:
    from forge_contracts.processing import GLOBAL_OPS, OP_NAMES, Op
    from pydantic import TypeAdapter

    adapter = TypeAdapter(Op)
    required: dict[str, dict[str, Any]] = {
        "keywords": {"keywords": ["x"]},
        "rule": {"expression": "True"},
        "augment_text": {"transforms": [{"kind": "swap"}]},
        "augment_image": {"transforms": [{"kind": "flip"}]},
        "augment_audio": {"transforms": [{"kind": "pitch"}]},
        "augment_video": {"skip": 2},
    }
    for name in OP_NAMES:
        op = adapter.validate_python({"op": name, **required.get(name, {})})
        if name in GLOBAL_OPS:
            continue
        if name in AUGMENT_OPS:
            assert AugmentStage(op, 0, 0, {}).op is op
            continue
        stage = stages.RowStage([op], 0, 0, str)
        assert len(stage.apply) == 1
    union = get_args(get_args(Op)[0])
    assert sorted(get_args(cls.model_fields["op"].annotation)[0] for cls in union) == sorted(OP_NAMES)
