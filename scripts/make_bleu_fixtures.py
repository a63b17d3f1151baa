#!/usr/bin/env python3
"""Regenerate crates/report/tests/fixtures/bleu_sacrebleu.json.

The fixture records what the `sacrebleu` Python package (default settings:
13a tokenizer, mixed case, exp smoothing, 4-grams; chrF with character
6-grams, beta 2, no word n-grams) says about small hypothesis/reference sets,
so crates/report/tests/sacrebleu.rs can check recurrent-report's BLEU, chrF
and tokenizer against it. CI has no Python packages: the JSON is committed
and this script is only for regenerating it (needs sacrebleu >= 2.0):

    pip install sacrebleu
    python3 scripts/make_bleu_fixtures.py

Floats are written as strings holding Python's repr, which Rust's
str::parse::<f64> reads back as the very same float; that lets the test
measure the real disagreement instead of JSON parsing error.
"""

import json
import random
from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

OUT = Path(__file__).resolve().parent.parent / "crates/report/tests/fixtures/bleu_sacrebleu.json"

# (name, hypotheses, references): one reference per hypothesis.
CASES = [
    (
        "perfect_match",
        ["The cat sat on the mat.", "It is raining, isn't it?"],
        ["The cat sat on the mat.", "It is raining, isn't it?"],
    ),
    (
        "punctuation",
        [
            'He said: "Stop (now)!" and left...',
            "Yes/no? [maybe] {never} #1 @home 50% a+b=c ~x^y_z | `q` \\ ;",
            "Well -- it's over; done.",
            "Prices: $5, £3, €4.",
        ],
        [
            'He said: "Stop now!" and he left.',
            "Yes/no? [maybe] {never} #1 @home 50% a+b=c ~x^y_z | `q` \\ :",
            "Well - it is over; finished.",
            "Prices: $5, £3 and €4.",
        ],
    ),
    (
        "numbers",
        [
            "It costs 1,000.50 dollars.",
            "Call 555-1234 at 10:30, not 9.45.",
            "Pages 10-20 of 3.14159 and 2,5.",
            "In 1999, 42 people came.",
        ],
        [
            "It costs 1,000.50 dollars",
            "Call 555-1234 at 10:30 and not at 9.45.",
            "Pages 10 - 20 of 3.14159 and 2,5",
            "In 1999 42 people came.",
        ],
    ),
    (
        "apostrophes",
        ["Don't do it.", "It's John's book.", "I'm sure they'll come.", "rock 'n' roll"],
        ["Do not do it.", "It's John's book.", "I am sure they will come.", "rock 'n' roll"],
    ),
    (
        "french_accents",
        [
            "Ça va très bien, merci\u202f!",
            "L'élève a oublié son cahier à l'école.",
            "« Où est la gare\u202f? » demanda-t-il.",
            "Nous sommes allés au marché où il y avait des œufs et du maïs.",
            "C'est l'été\u00a0: il fait chaud.",
        ],
        [
            "Ça va très bien, merci !",
            "L'élève a oublié son cahier à l’école.",
            "« Où se trouve la gare ? » demanda-t-il.",
            "Nous sommes allées au marché où il y avait des œufs et du maïs.",
            "C'est l'été : il fait très chaud.",
        ],
    ),
    (
        "empty_hypotheses",
        ["", "The weather is nice today.", "", "Thank you."],
        ["Hello there.", "The weather is nice today.", "Good night.", "Thanks a lot."],
    ),
    ("all_empty_hypotheses", ["", "", " "], ["One sentence.", "Two sentences here.", "Three."]),
    (
        "hypothesis_longer_than_reference",
        [
            "I think that the very big dog really ran quickly across the whole green park today.",
            "She is reading a long and boring book in the old library.",
        ],
        ["The big dog ran across the park.", "She is reading a book."],
    ),
    (
        "short_sentences",
        ["Go.", "Run!", "Hi there.", "Help me!"],
        ["Go.", "Run!", "Hello.", "Help me!"],
    ),
    ("empty_reference", ["Something was said.", "Yes."], ["", "Yes."]),
    ("no_overlap", ["alpha beta gamma delta"], ["one two three four five"]),
    (
        "smoothing_missing_orders",
        ["the cat the dog the bird the fish", "a b c d e"],
        ["the dog the cat the fish the bird", "a x b x c x d x e"],
    ),
    (
        "case_sensitive",
        ["The Cat Sat On The Mat.", "PARIS is in FRANCE."],
        ["the cat sat on the mat.", "Paris is in France."],
    ),
    (
        "entities_and_markup",
        [
            "&quot;Hello&quot; &amp; goodbye &lt;b&gt;bold&lt;/b&gt; <skipped>gone",
            "A &amp;amp; B",
            "x < y & z > w",
        ],
        ['"Hello" & goodbye <b>bold</b> gone', "A & B", "x < y & z > w"],
    ),
    (
        "whitespace",
        [
            "  leading and trailing spaces   ",
            "tabs\tand  double  spaces",
            "non\u00a0breaking\u2009thin\u3000ideographic",
            "unit\x1cseparator\x1fhere",
            "a line that ends in a hyphen-\nand goes on",
            "trailing hyphen newline-\n",
            "windows line end\r\n",
        ],
        [
            "leading and trailing spaces",
            "tabs and double spaces",
            "non breaking thin ideographic",
            "unit separator here",
            "a line that ends in a hyphenand goes on",
            "trailing hyphen newline-",
            "windows line end",
        ],
    ),
    (
        "realistic_translations",
        [
            "I don't know what to do.",
            "He has been living in Paris for ten years.",
            "We need to talk about this tomorrow.",
            "The train arrived late because of the snow.",
            "Could you please close the window?",
            "She never said that she was sad.",
        ],
        [
            "I do not know what I should do.",
            "He has lived in Paris for ten years.",
            "We must talk about it tomorrow.",
            "The train was late because of the snow.",
            "Can you close the window, please?",
            "She never said she was unhappy.",
        ],
    ),
]


def random_case(seed, n):
    """A bigger corpus: references from a small vocabulary, hypotheses made
    from them by dropping, repeating, swapping and replacing words, so all
    n-gram orders have partial matches and lengths differ both ways."""
    rng = random.Random(seed)
    words = (
        "the a cat dog house car runs eats sleeps big small red blue , . ! ? "
        "l' été à où déjà 3.5 1,000 10-20 don't it's (a) \"b\" &"
    ).split()
    hyps, refs = [], []
    for _ in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(1, 14))]
        hyp = []
        for w in ref:
            r = rng.random()
            if r < 0.1:
                continue
            if r < 0.2:
                hyp.append(rng.choice(words))
            elif r < 0.25:
                hyp += [w, w]
            else:
                hyp.append(w)
        if len(hyp) > 2 and rng.random() < 0.3:
            i = rng.randrange(len(hyp) - 1)
            hyp[i], hyp[i + 1] = hyp[i + 1], hyp[i]
        # Words glued to punctuation exercise the tokenizer, too.
        hyps.append(" ".join(hyp).replace(" ,", ",").replace(" .", "."))
        refs.append(" ".join(ref).replace(" ,", ",").replace(" .", "."))
    return hyps, refs


def f(x):
    return repr(float(x))


# Module-level so that their signatures (known only after scoring) can be recorded.
BLEU_METRIC = BLEU()
CHRF_METRIC = CHRF()


def record(name, hyps, refs):
    bleu = BLEU_METRIC.corpus_score(hyps, [refs])
    chrf = CHRF_METRIC.corpus_score(hyps, [refs])
    tok = Tokenizer13a()
    return {
        "name": name,
        "hypotheses": hyps,
        "references": refs,
        # The tokenizer alone, before BLEU's rstrip: what tokenize_13a returns.
        "tokenized_hypotheses": [tok(h) for h in hyps],
        "tokenized_references": [tok(r) for r in refs],
        "bleu": {
            "score": f(bleu.score),
            "counts": [int(c) for c in bleu.counts],
            "totals": [int(t) for t in bleu.totals],
            "precisions": [f(p) for p in bleu.precisions],
            "bp": f(bleu.bp),
            "sys_len": int(bleu.sys_len),
            "ref_len": int(bleu.ref_len),
            "display": str(bleu),
        },
        "chrf": f(chrf.score),
    }


def main():
    cases = [record(name, hyps, refs) for name, hyps, refs in CASES]
    hyps, refs = random_case(seed=7, n=300)
    cases.append(record("random_corpus", hyps, refs))
    fixture = {
        "generator": "scripts/make_bleu_fixtures.py",
        "sacrebleu_version": sacrebleu.__version__,
        "bleu_signature": str(BLEU_METRIC.get_signature()),
        "chrf_signature": str(CHRF_METRIC.get_signature()),
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for case in cases:
        print(f"{case['name']:36} {case['bleu']['display']}  chrF = {float(case['chrf']):.2f}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
